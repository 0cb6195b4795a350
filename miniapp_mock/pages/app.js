/* 网签小程序 H5（演示）: hash routing, fetch with a bearer token kept in sessionStorage.
 * Talks to /api/v1/... like the mini program, and to /mock/... for wx.login and the demo
 * SMS inbox. No libraries, no network beyond this server. */
"use strict";

(function () {
  var TOKEN = "wq.token";
  var PENDING = "wq.pendingScene";
  var FACE = "wq.faceSession";
  var WX_USER = "wq.wechatUser";  // the mock WeChat user, for the mock wx APIs
  // The news a buyer can ask for after signing (our template keys; the API gives each
  // its template id, which is the mini program's own, configured in its WeChat console).
  var AFTER_SIGNING = ["contract_signed", "down_payment_arrived"];
  var view = document.getElementById("view");
  var titleEl = document.getElementById("title");
  var whoEl = document.getElementById("who");

  var STATUS = {
    draft: "草稿",
    awaiting_signatures: "待签署",
    awaiting_seal: "待开发企业盖章",
    signed: "已签约",
    filing_pending: "已签约·待备案",
    filing_rejected: "备案退回",
    filed: "已备案",
    cancellation_pending: "注销办理中",
    cancelled: "已注销",
    expired: "已过期",
    voided: "已作废",
  };
  // A sealed, numbered contract, whatever filing or a cancellation is doing to it.
  var CONTRACT = ["signed", "filing_pending", "filing_rejected", "filed", "cancellation_pending"];
  function isContract(status) { return CONTRACT.indexOf(status) >= 0; }
  var CANCEL_STATUS = {
    awaiting_signatures: "待买受人签署",
    awaiting_seal: "待开发企业盖章",
    awaiting_review: "待主管部门审核",
    approved: "已注销",
    rejected: "已驳回",
    withdrawn: "已撤回",
  };
  var LEVEL = { none: "未实名", real_name: "已实名，待人脸核身", face_verified: "已实名并通过人脸核身" };
  var FACE_REASON = {
    face_mismatch: "人脸比对不一致",
    identity_mismatch: "核身身份与实名信息不一致",
    expired: "核身已超时",
  };
  var NOTICE_KIND = { deposit: "定金", down_payment: "首付款" };
  var NOTICE_STATUS = {
    unpaid: "未缴", partial: "部分缴纳", paid: "已缴清", overpaid: "多缴", cancelled: "已停止收款",
  };
  var EVENT = {
    created: "创建合同订单",
    issued: "生成签约二维码",
    scanned: "扫码查看合同",
    scan_refused: "扫码被拒绝",
    sign_code_sent: "发送签署验证码",
    signed: "买受人签署",
    declined: "买受人拒签",
    awaiting_seal: "买受人全部签署，待开发企业盖章",
    seal_code_sent: "发送盖章验证码",
    seal_reminded: "提醒开发企业盖章",
    sealed: "开发企业盖章",
    document_opened: "阅读合同全文",
    pdf_finished: "生成签署版 PDF",
    completed: "签约完成",
    password_shown: "查看合同密码",
    filing_submitted: "提交备案",
    filing_rejected: "备案退回",
    filing_resubmitted: "重新提交备案",
    filed: "备案完成",
    cancellation_started: "申请注销（退房）",
    cancellation_code_sent: "发送解除协议签署验证码",
    cancellation_signed: "买受人签署解除协议",
    cancellation_awaiting_seal: "解除协议待开发企业盖章",
    cancellation_seal_code_sent: "发送解除协议盖章验证码",
    cancellation_sealed: "开发企业盖章解除协议",
    cancellation_withdrawn: "撤回注销申请",
    cancellation_rejected: "注销申请被驳回",
    cancelled: "合同已注销",
    voided: "合同订单作废",
    expired: "合同订单过期",
    draft_discarded: "草稿超时作废",
  };

  function esc(value) {
    return String(value === null || value === undefined ? "" : value).replace(/[&<>"']/g,
      function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]; });
  }
  function yuan(fen) {
    var n = Number(fen || 0);
    var whole = Math.floor(n / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return whole + "." + String(n % 100).padStart(2, "0") + " 元";
  }
  function area(units) {
    if (units === null || units === undefined || units === "") { return "-"; }
    if (typeof units === "string") { return units + " ㎡"; }
    return Math.floor(units / 10000) + "." + String(units % 10000).padStart(4, "0") + " ㎡";
  }
  function when(iso) {
    if (!iso) { return "-"; }
    var d = new Date(iso);
    return d.toLocaleString("zh-CN", { timeZone: "Asia/Shanghai", hour12: false });
  }
  function token() { return sessionStorage.getItem(TOKEN); }
  function go(hash) {
    if (location.hash === hash) { route(); } else { location.hash = hash; }
  }

  function ApiError(status, problem) {
    this.status = status;
    this.code = (problem && problem.code) || "";
    this.message = (problem && (problem.detail || problem.errmsg || problem.title)) ||
      ("请求失败（" + status + "）");
  }

  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (token()) { headers.Authorization = "Bearer " + token(); }
    var init = { method: method, headers: headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!response.ok) {
          if (response.status === 401 && path.indexOf("/api/v1/auth/") !== 0) {
            sessionStorage.removeItem(TOKEN);
          }
          throw new ApiError(response.status, data);
        }
        return data;
      });
    }, function () { throw new ApiError(0, { detail: "网络连接失败，请稍后重试。" }); });
  }

  function render(title, html) {
    titleEl.textContent = title;
    document.title = title + " · 网签";
    view.innerHTML = html;
  }
  function showError(where, error) {
    var box = typeof where === "string" ? document.getElementById(where) : where;
    if (!box) { box = view; }
    box.innerHTML = '<p class="error" role="alert">' + esc(error.message || error) + "</p>";
  }
  function on(id, event, handler) {
    var el = document.getElementById(id);
    if (el) { el.addEventListener(event, handler); }
  }
  function busy(button, promise) {
    button.disabled = true;
    return promise.then(function (v) { button.disabled = false; return v; },
      function (e) { button.disabled = false; throw e; });
  }

  function refreshWho() {
    if (!token()) { whoEl.textContent = "未登录"; return Promise.resolve(null); }
    return api("GET", "/api/v1/me").then(function (me) {
      whoEl.textContent = me.name ? me.name.charAt(0) + "*" : (me.phone_masked || "已登录");
      return me;
    });
  }

  /* The demo's mock services (face provider, bank) live on this same server: open them on
   * the address this page was loaded from (a phone on the LAN cannot reach 127.0.0.1). */
  function sameOriginMock(url) {
    try {
      var parsed = new URL(url, location.href);
      if (parsed.pathname.indexOf("/mock/") === 0) { return parsed.pathname + parsed.search; }
    } catch (e) { return url; }
    return url;
  }

  /* After each step: where the journey continues. */
  function next() {
    return api("GET", "/api/v1/me").then(function (me) {
      if (!me.phone_masked) { go("#/phone"); return; }
      var pending = sessionStorage.getItem(PENDING);
      if (pending && me.identity_level === "none") { go("#/real-name"); return; }
      if (pending && me.identity_level === "real_name") { go("#/face"); return; }
      if (pending) { go("#/scan/" + pending); return; }
      go("#/home");
    }, function (e) { showError(view, e); });
  }

  function smsHelper(phoneInputId, boxId) {
    /* Demo only: the mock SMS inbox stands in for the phone's messages. */
    var phone = document.getElementById(phoneInputId).value.trim();
    var box = document.getElementById(boxId);
    if (!phone) { box.innerHTML = '<p class="hint">请先填写手机号。</p>'; return; }
    fetch("/mock/sms/inbox?phone=" + encodeURIComponent(phone)).then(function (r) { return r.json(); })
      .then(function (messages) {
        box.innerHTML = messages.length
          ? '<p class="ok">最新短信：' + esc(messages[0].text) + "</p>"
          : '<p class="hint">暂无短信。</p>';
      }, function () { box.innerHTML = '<p class="hint">模拟短信收件箱不可用。</p>'; });
  }

  /* ---------------------------------------------------------------- pages */

  var pages = {};

  pages.login = function () {
    render("登录", [
      '<div class="card"><h2>微信授权登录</h2>',
      '<p class="hint">演示环境：填写任意标识作为模拟微信用户（同一标识即同一微信账号）。</p>',
      '<label for="wx-user">模拟微信用户</label>',
      '<input id="wx-user" autocomplete="off" placeholder="例如 13900000001">',
      '<button id="wx-login">微信一键登录</button><div id="login-msg"></div></div>',
      '<div class="card"><h2>其他</h2>',
      '<a class="button secondary" href="#/phone-login">手机号验证码登录</a>',
      '<a class="button secondary" href="#/verify">合同查询（无需登录）</a></div>',
    ].join(""));
    on("wx-login", "click", function (ev) {
      var user = document.getElementById("wx-user").value.trim() || "demo-" + Date.now();
      busy(ev.target, api("POST", "/mock/wechat/login", { user: user }).then(function (wx) {
        return api("POST", "/api/v1/auth/wechat", { code: wx.code });
      })).then(function (session) {
        sessionStorage.setItem(TOKEN, session.token);
        sessionStorage.setItem(WX_USER, user);
        refreshWho();
        if (!session.phone_bound) { go("#/phone"); } else { next(); }
      }, function (e) { showError("login-msg", e); });
    });
  };

  function phoneForm(mode) {
    var bind = mode === "bind";
    render(bind ? "绑定手机号" : "手机号登录", [
      '<div class="card"><h2>', bind ? "绑定手机号" : "手机号验证码登录", "</h2>",
      bind ? '<p class="hint">签约验证码将发送到此手机号。</p>' : "",
      '<label for="phone">手机号</label>',
      '<input id="phone" type="tel" inputmode="numeric" maxlength="11" placeholder="请输入手机号">',
      '<button id="send" class="secondary">获取验证码</button>',
      '<label for="code">短信验证码</label>',
      '<input id="code" inputmode="numeric" maxlength="6" autocomplete="one-time-code" placeholder="6 位验证码">',
      '<button id="submit">', bind ? "绑定" : "登录", "</button>",
      '<div id="phone-msg"></div></div>',
      '<div class="card"><p class="hint">演示环境没有真实短信，可在此查看模拟短信。</p>',
      '<button id="inbox" class="secondary">查看模拟短信</button><div id="inbox-box"></div></div>',
    ].join(""));
    on("inbox", "click", function () { smsHelper("phone", "inbox-box"); });
    on("send", "click", function (ev) {
      var phone = document.getElementById("phone").value.trim();
      busy(ev.target, api("POST", "/api/v1/auth/sms/send", { phone: phone })).then(function () {
        document.getElementById("phone-msg").innerHTML = '<p class="ok">验证码已发送。</p>';
      }, function (e) { showError("phone-msg", e); });
    });
    on("submit", "click", function (ev) {
      var phone = document.getElementById("phone").value.trim();
      var code = document.getElementById("code").value.trim();
      var call = bind
        ? api("POST", "/api/v1/me/phone", { phone: phone, code: code })
        : api("POST", "/api/v1/auth/sms/verify", { phone: phone, code: code, kind: "citizen" })
          .then(function (s) { sessionStorage.setItem(TOKEN, s.token); sessionStorage.removeItem(WX_USER); });
      busy(ev.target, call).then(function () { refreshWho(); next(); },
        function (e) { showError("phone-msg", e); });
    });
  }
  pages.phone = function () { phoneForm("bind"); };
  pages["phone-login"] = function () { phoneForm("login"); };

  pages.home = function () {
    render("网上签约", '<div class="card"><p class="hint">加载中…</p></div>');
    refreshWho().then(function (me) {
      var level = me.identity_level || "none";
      var pending = sessionStorage.getItem(PENDING);
      function step(href, label, done) {
        return '<a href="' + href + '"><b>' + label + "</b>" +
          (done ? '<span class="done">已完成</span>' : '<span class="todo">去完成 ›</span>') + "</a>";
      }
      render("网上签约", [
        '<div class="card"><h2>我的身份</h2><dl>',
        "<dt>姓名</dt><dd>", esc(me.name || "未实名"), "</dd>",
        "<dt>身份证号</dt><dd>", esc(me.id_number_masked || "-"), "</dd>",
        "<dt>手机号</dt><dd>", esc(me.phone_masked || "未绑定"), "</dd>",
        "<dt>认证状态</dt><dd>", esc(LEVEL[level] || level), "</dd></dl></div>",
        '<div class="card steps"><h2>签约步骤</h2><ul class="list">',
        "<li>", step("#/phone", "1. 绑定手机号", !!me.phone_masked), "</li>",
        "<li>", step("#/real-name", "2. 实名认证", level !== "none"), "</li>",
        "<li>", step("#/face", "3. 人脸核身", level === "face_verified"), "</li>",
        "<li>", step("#/scan", "4. 扫码签约", false), "</li></ul>",
        pending ? '<a class="button" href="#/scan/' + esc(pending) + '">继续签约</a>' : "",
        "</div>",
        '<div class="card"><a class="button secondary" href="#/contracts">我的合同</a>',
        '<a class="button secondary" href="#/verify">合同查询</a>',
        '<button id="logout" class="danger">退出登录</button></div>',
      ].join(""));
      on("logout", "click", function () {
        api("POST", "/api/v1/auth/logout").then(null, function () { return null; }).then(function () {
          sessionStorage.clear();
          refreshWho();
          go("#/login");
        });
      });
    }, function (e) { showError(view, e); });
  };

  pages["real-name"] = function () {
    render("实名认证", [
      '<div class="card"><h2>实名认证</h2>',
      '<p class="hint">请填写与合同一致的姓名和居民身份证号码。</p>',
      '<label for="name">姓名</label><input id="name" autocomplete="name" placeholder="请输入姓名">',
      '<label for="id-number">身份证号</label>',
      '<input id="id-number" maxlength="18" autocomplete="off" placeholder="18 位居民身份证号码">',
      '<button id="submit">提交认证</button><div id="rn-msg"></div></div>',
    ].join(""));
    on("submit", "click", function (ev) {
      var body = {
        name: document.getElementById("name").value.trim(),
        id_number: document.getElementById("id-number").value.trim().toUpperCase(),
      };
      busy(ev.target, api("POST", "/api/v1/me/real-name", body)).then(function () {
        refreshWho();
        go("#/face");
      }, function (e) { showError("rn-msg", e); });
    });
  };

  pages.face = function () {
    render("人脸核身", [
      '<div class="card"><h2>人脸核身</h2>',
      "<p>签署合同前需要确认是本人操作。点击下方按钮将打开核身页面，完成后回到本页查看结果。</p>",
      '<button id="start">开始人脸核身</button>',
      '<button id="check" class="secondary">我已完成，查看结果</button>',
      '<div id="face-msg"></div></div>',
    ].join(""));
    on("start", "click", function (ev) {
      var popup = window.open("", "_blank");
      busy(ev.target, api("POST", "/api/v1/me/face-sessions")).then(function (face) {
        sessionStorage.setItem(FACE, face.id);
        var url = sameOriginMock(face.url);
        if (popup) { popup.location.href = url; } else { location.href = url; }
        document.getElementById("face-msg").innerHTML =
          '<p class="hint">已打开核身页面，完成后请点击「我已完成，查看结果」。</p>';
      }, function (e) { if (popup) { popup.close(); } showError("face-msg", e); });
    });
    on("check", "click", function (ev) {
      var id = sessionStorage.getItem(FACE);
      if (!id) { showError("face-msg", "请先点击「开始人脸核身」。"); return; }
      busy(ev.target, api("GET", "/api/v1/me/face-sessions/" + encodeURIComponent(id)))
        .then(function (face) {
          var box = document.getElementById("face-msg");
          if (face.status === "passed" || face.identity_level === "face_verified") {
            box.innerHTML = '<p class="ok">人脸核身通过。</p>';
            refreshWho();
            setTimeout(next, 600);
          } else if (face.status === "pending") {
            box.innerHTML = '<p class="hint">尚未完成核身，请在核身页面完成后再查看。</p>';
          } else {
            showError(box, "人脸核身未通过（" + (FACE_REASON[face.reason] || face.reason || face.status) +
              "），请点击「开始人脸核身」重新核验。");
          }
        }, function (e) { showError("face-msg", e); });
    });
  };

  // Our QR codes hold exactly `<this server>/miniapp/#/scan/<scene>` (the API's scan_url):
  // anything else, another site's code even with a scene in it, is not ours. A bare scene
  // is accepted only when typed (`typed`), never from a photo.
  function sceneFrom(text, typed) {
    var value = (text || "").trim();
    var prefix = location.origin + "/miniapp/#/scan/";
    var scene = value.indexOf(prefix) === 0 ? value.slice(prefix.length) : typed ? value : "";
    return /^[0-9A-Za-z]{1,32}$/.test(scene) ? scene : "";
  }

  // Photos are read at a few sizes: a small copy is fast and smooths out noise and blur,
  // a larger one keeps a code that fills little of the frame readable.
  var PHOTO_SIDES = [1024, 640, 1600];

  function loadPhoto(file) {
    if (window.createImageBitmap) {
      return createImageBitmap(file, { imageOrientation: "from-image" });
    }
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () { URL.revokeObjectURL(url); resolve(img); };
      img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("unreadable")); };
      img.src = url;
    });
  }

  function readQrPhoto(file) {
    return loadPhoto(file).then(function (picture) {
      var width = picture.naturalWidth || picture.width;
      var height = picture.naturalHeight || picture.height;
      var canvas = document.createElement("canvas");
      var context = canvas.getContext("2d", { willReadFrequently: true });
      var tried = {};
      for (var i = 0; i < PHOTO_SIDES.length; i++) {
        var scale = Math.min(1, PHOTO_SIDES[i] / Math.max(width, height));
        var w = Math.max(1, Math.round(width * scale));
        var h = Math.max(1, Math.round(height * scale));
        if (tried[w]) { continue; }
        tried[w] = true;
        canvas.width = w;
        canvas.height = h;
        context.drawImage(picture, 0, 0, w, h);
        var found = window.QrDecoder.decode(context.getImageData(0, 0, w, h).data, w, h);
        if (found) { return found.text; }
      }
      return null;
    });
  }

  pages.scan = function (scene) {
    if (!scene) {
      render("扫码签约", [
        '<div class="card"><h2>扫码签约</h2>',
        "<p>请用手机相机或微信扫描售楼处出示的签约二维码，二维码会直接打开本页面。</p>",
        '<label class="button" for="scan-photo">拍照或选择二维码图片</label>',
        '<input id="scan-photo" class="hidden-file" type="file" accept="image/*">',
        '<p class="hint">照片中二维码要完整、清晰；识别在手机上完成，照片不会上传。</p>',
        '<label for="scan-link">也可粘贴扫码得到的链接或签约码</label>',
        '<input id="scan-link" autocomplete="off" placeholder="http://…/miniapp/#/scan/…">',
        '<button id="open">打开合同</button><div id="scan-msg"></div></div>',
      ].join(""));
      on("open", "click", function () {
        var s = sceneFrom(document.getElementById("scan-link").value, true);
        if (!s) { showError("scan-msg", "无法识别的链接或签约码，请重新扫描。"); return; }
        go("#/scan/" + s);
      });
      on("scan-photo", "change", function (ev) {
        var file = ev.target.files && ev.target.files[0];
        ev.target.value = "";
        if (!file) { return; }
        document.getElementById("scan-msg").innerHTML = '<p class="hint">正在识别二维码…</p>';
        // Give the message a frame to appear before the decoder holds the thread.
        setTimeout(function () {
          readQrPhoto(file).then(function (text) {
            if (text === null) {
              showError("scan-msg", "未能识别照片中的二维码。请让二维码完整、清晰地位于画面中央后重拍，或粘贴链接。");
              return;
            }
            var s = sceneFrom(text, false);
            if (!s) { showError("scan-msg", "这不是网签合同的签约二维码，请扫描售楼处出示的二维码。"); return; }
            go("#/scan/" + s);
          }, function () {
            showError("scan-msg", "无法打开这张图片，请换一张照片。");
          });
        }, 30);
      });
      return;
    }
    if (!token()) { sessionStorage.setItem(PENDING, scene); go("#/login"); return; }
    render("扫码签约", '<div class="card"><p class="hint">正在打开合同…</p><div id="scan-msg"></div></div>');
    api("POST", "/api/v1/scan", { scene: scene }).then(function (answer) {
      sessionStorage.removeItem(PENDING);
      go(answer.cancellation_id ? "#/cancellation/" + answer.cancellation_id : "#/contract/" + answer.order.id);
    }, function (e) {
      var extra = "";
      if (e.code === "face_verification_required") {
        sessionStorage.setItem(PENDING, scene);
        extra = '<a class="button" href="#/real-name">去实名认证</a>';
        return api("GET", "/api/v1/me").then(function (me) {
          if (me.identity_level === "real_name") { extra = '<a class="button" href="#/face">去人脸核身</a>'; }
          show();
        }, show);
      }
      if (e.code === "qr_expired" || e.code === "order_expired" || e.code === "order_voided" ||
          e.code === "scene_unknown" || e.code === "cancellation_closed") {
        sessionStorage.removeItem(PENDING);
      }
      show();
      function show() {
        render("扫码签约", '<div class="card"><h2>无法打开合同</h2><p class="error" role="alert">' +
          esc(e.message) + "</p>" + extra + '<a class="button secondary" href="#/home">返回首页</a></div>');
      }
    });
  };

  function loadOrder(id) {
    return api("GET", "/api/v1/contracts/" + encodeURIComponent(id));
  }
  function myParty(order) {
    return (order.parties || []).filter(function (p) { return p.id === order.my_party_id; })[0];
  }
  function statusTag(status) {
    return '<span class="status ' + esc(status) + '" data-status="' + esc(status) + '">' +
      esc(STATUS[status] || status) + "</span>";
  }
  function partiesHtml(order) {
    return (order.parties || []).map(function (p) {
      return "<li><b>" + esc(p.role === "buyer" ? "买受人" : p.role === "seller" ? "出卖人" : p.role) +
        "：" + esc(p.name) + "</b>" + (p.share ? "（份额 " + esc(p.share) + "）" : "") +
        '<br><span class="hint">身份证 ' + esc(p.id_number_masked) + " · 手机 " + esc(p.phone_masked) +
        "</span><br>" + (p.signed_at ? '<span class="status signed">已签署 ' + esc(when(p.signed_at)) + "</span>"
          : p.declined_at ? '<span class="status voided">已拒签</span>' : '<span class="status">未签署</span>') +
        "</li>";
    }).join("");
  }

  pages.contract = function (id) {
    render("合同详情", '<div class="card"><p class="hint">加载中…</p></div>');
    Promise.all([loadOrder(id), api("GET", "/api/v1/contracts/" + encodeURIComponent(id) + "/document")])
      .then(function (both) {
        var order = both[0];
        var doc = both[1].document || {};
        var terms = doc.terms || doc;
        var unit = terms.unit || {};
        var me = myParty(order);
        var canSign = order.status === "awaiting_signatures" && me && !me.signed_at && !me.declined_at;
        var hasMoney = !!order.business_number && order.status !== "draft";
        render("合同详情", [
          '<div class="card"><h2>', esc(terms.title || "商品房买卖合同"), "</h2>",
          "<p>", statusTag(order.status), "</p>",
          order.contract_number ? '<p>合同编号：<b id="contract-number">' + esc(order.contract_number) + "</b></p>" : "",
          "<dl>",
          "<dt>项目</dt><dd>", esc(unit.project || order.unit.project), "</dd>",
          "<dt>房屋</dt><dd>", esc(unit.building || order.unit.building), " ", esc(unit.unit || ""), " ",
          esc(unit.room_no || order.unit.room_no), "</dd>",
          unit.address ? "<dt>坐落</dt><dd>" + esc(unit.address) + "</dd>" : "",
          unit.use ? "<dt>用途</dt><dd>" + esc(unit.use) + "</dd>" : "",
          "<dt>建筑面积</dt><dd>", esc(area(unit.building_area_units)), "</dd>",
          "<dt>套内面积</dt><dd>", esc(area(unit.inner_area_units)), "</dd>",
          "<dt>总价款</dt><dd><b>", esc(yuan(order.price_fen)), "</b></dd>",
          "<dt>付款方式</dt><dd>", esc(terms.payment_method_label || order.payment_method), "</dd>",
          "<dt>定金</dt><dd>", esc(yuan(order.deposit_fen)), "</dd>",
          "<dt>首付款</dt><dd>", esc(yuan(order.down_payment_fen)), "</dd>",
          "<dt>交付日期</dt><dd>", esc(order.delivery_date), "</dd>",
          "<dt>出卖人</dt><dd>", esc(order.company), "</dd>",
          "</dl></div>",
          '<div class="card"><h2>签约各方</h2><ul class="list">', partiesHtml(order), "</ul></div>",
          filingHtml(order),
          hasMoney ? '<div class="card" id="notices"><h2>缴款通知</h2><p class="hint">加载中…</p></div>' : "",
          contractText(doc.text),
          canSign ? '<a class="button" id="to-sign" href="#/sign/' + esc(order.id) + '">我已阅读，去签署</a>' : "",
          me && isContract(order.status) ? pdfButton() : "",
          me && isContract(order.status) ? '<div class="card" id="cancellations"><h2>退房</h2><p class="hint">加载中…</p></div>' : "",
          '<div class="card"><h2>业务进度</h2><div id="timeline"><p class="hint">加载中…</p></div></div>',
          '<p class="hash">文件摘要（SHA-256）：', esc(order.document_hash || "-"), "</p>",
        ].join(""));
        loadTimeline(order.id);
        if (hasMoney) { loadNotices(order.id); }
        if (me && isContract(order.status)) { loadCancellations(order); }
        on("download-pdf", "click", function (ev) { downloadPdf(ev.target, order); });
        // A party who was shown the whole text: the timeline keeps who opened which
        // document and when (the evidence that it was read before signing).
        if (me && doc.text && order.document_hash) {
          api("POST", "/api/v1/contracts/" + encodeURIComponent(order.id) + "/document/opened",
            { document_hash: order.document_hash }).then(null, function () { return null; });
        }
      }, function (e) { showError(view, e); });
  };

  function filingHtml(order) {
    if (order.filing_number) {
      return '<div class="card" id="filing"><h2>合同备案</h2><dl><dt>备案号</dt><dd id="filing-number">' +
        esc(order.filing_number) + "</dd><dt>备案时间</dt><dd>" + esc(when(order.filed_at)) + "</dd></dl></div>";
    }
    if (order.status === "filing_rejected") {
      return '<div class="card" id="filing"><h2>合同备案</h2><p class="error">备案被主管部门退回：' +
        esc(order.filing_rejection_reason) + "</p><p class=\"hint\">开发企业补正后将重新提交备案。</p></div>";
    }
    return "";
  }

  function loadCancellations(order) {
    api("GET", "/api/v1/cancellations").then(function (answer) {
      var box = document.getElementById("cancellations");
      if (!box) { return; }
      var mine = (answer.items || []).filter(function (c) { return c.order_id === order.id; });
      var open = mine.filter(function (c) { return ["awaiting_signatures", "awaiting_seal", "awaiting_review"].indexOf(c.status) >= 0; });
      box.innerHTML = "<h2>退房</h2>" + (mine.length ? '<ul class="list">' + mine.map(function (c) {
        return '<li><a href="#/cancellation/' + esc(c.id) + '">注销申请 · ' + esc(CANCEL_STATUS[c.status] || c.status) +
          '</a><br><span class="hint">' + esc(c.reason) + "</span></li>";
      }).join("") + "</ul>" : "") +
        (!open.length && order.status !== "cancellation_pending"
          ? '<a class="button secondary" id="to-cancel" href="#/cancel/' + esc(order.id) + '">申请退房</a>' : "");
    }, function (e) { showError("cancellations", e); });
  }

  /* The whole contract as it is signed: every chapter and clause of the document's text. */
  function contractText(text) {
    if (!text || !text.chapters) { return ""; }
    return '<div class="card contract-text" id="contract-text"><h2>合同全文</h2>' +
      '<p class="hint">请完整阅读以下条款；您签署的正是这份文本。</p>' +
      '<h3 class="doc-title">' + esc(text.title) + "</h3>" +
      text.chapters.map(function (chapter) {
        return '<section class="chapter"><h4>' + esc(chapter.heading) + "</h4>" +
          chapter.clauses.map(function (clause) { return "<p>" + esc(clause) + "</p>"; }).join("") +
          "</section>";
      }).join("") + '<p class="hint" id="text-end">— 合同正文完 —</p></div>';
  }

  function pdfButton() {
    return '<button id="download-pdf" class="secondary">下载签署版合同 PDF</button><div id="pdf-msg"></div>';
  }

  /* The signed PDF: fetched with the login token, saved under the contract number. */
  function downloadPdf(button, order) {
    busy(button, fetch("/api/v1/contracts/" + encodeURIComponent(order.id) + "/pdf",
      { headers: { Authorization: "Bearer " + token() } }).then(function (r) {
      if (!r.ok) { throw new Error("合同 PDF 暂不可用。"); }
      return r.blob();
    })).then(function (blob) {
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = (order.contract_number || "contract") + ".pdf";
      document.body.appendChild(link);
      link.click();
      link.remove();
      document.getElementById("pdf-msg").innerHTML =
        '<p class="ok" id="pdf-saved">已下载 ' + esc(link.download) + "（含各方电子签名、合同章和可信时间戳）</p>";
    }, function (e) { showError("pdf-msg", e); });
  }

  function loadTimeline(id) {
    api("GET", "/api/v1/contracts/" + encodeURIComponent(id) + "/events").then(function (answer) {
      var box = document.getElementById("timeline");
      if (!box) { return; }
      box.innerHTML = '<ol class="timeline">' + (answer.events || []).map(function (ev) {
        return "<li>" + esc(when(ev.at)) + " · " + esc(EVENT[ev.type] || ev.type) +
          (ev.actor ? "（" + esc(ev.actor) + "）" : "") + "</li>";
      }).join("") + "</ol>";
    }, function (e) { showError("timeline", e); });
  }

  function loadNotices(id) {
    api("GET", "/api/v1/contracts/" + encodeURIComponent(id) + "/payment-notices").then(function (answer) {
      var box = document.getElementById("notices");
      if (!box) { return; }
      var items = answer.items || [];
      var refund = answer.refunded_fen || answer.refunding_fen ? '<p id="refund">' +
        (answer.refunded_fen ? "已退回 <b>" + esc(yuan(answer.refunded_fen)) + "</b>" : "") +
        (answer.refunded_fen && answer.refunding_fen ? "，" : "") +
        (answer.refunding_fen ? "退款办理中 <b>" + esc(yuan(answer.refunding_fen)) + "</b>" : "") +
        '</p><p class="hint">退款由监管银行原路退回付款账户。</p>' : "";
      box.innerHTML = "<h2>缴款通知</h2>" + refund + (items.length ? '<ul class="list">' + items.map(function (n) {
        return "<li><b>" + esc(NOTICE_KIND[n.kind] || n.kind) + "</b> " +
          '<span class="status ' + (n.closed ? "signed" : "awaiting_seal") + '">' +
          esc(NOTICE_STATUS[n.status] || n.status) + "</span>" +
          "<dl><dt>应缴</dt><dd>" + esc(yuan(n.due_fen)) + "</dd><dt>已缴</dt><dd>" + esc(yuan(n.paid_fen)) +
          "</dd><dt>缴款编号</dt><dd>" + esc(n.reference) + "</dd><dt>收款账户</dt><dd>" +
          esc(n.account_name) + " " + esc(n.account_number_masked) + "（" + esc(n.bank_name) + "）</dd></dl>" +
          (n.closed || n.status === "cancelled" ? "" : n.pay_url
            ? '<a class="button" target="_blank" rel="noopener" href="' + esc(sameOriginMock(n.pay_url)) +
              '">去缴款（监管银行）</a>'
            : '<button class="pay secondary" data-notice="' + esc(n.id) + '">去缴款</button>' +
              '<div class="pay-box" id="pay-' + esc(n.id) + '"></div>') + "</li>";
      }).join("") + "</ul>" : '<p class="hint">暂无缴款通知。</p>');
      var unpaidDeposit = items.filter(function (n) { return n.kind === "deposit" && !n.closed && n.status !== "cancelled"; });
      var toSign = document.getElementById("to-sign");
      if (toSign && unpaidDeposit.length) {
        toSign.insertAdjacentHTML("beforebegin", '<p class="hint" id="deposit-first">请先缴清定金（实缴金额须等于应缴金额），缴清后即可签署。</p>');
      }
      Array.prototype.forEach.call(box.querySelectorAll("button.pay"), function (button) {
        button.addEventListener("click", function () {
          var notice = button.getAttribute("data-notice");
          var target = document.getElementById("pay-" + notice);
          fetch("/api/v1/payment-notices/" + encodeURIComponent(notice) + "/qr.png",
            { headers: { Authorization: "Bearer " + token() } })
            .then(function (r) { if (!r.ok) { throw new Error("缴款二维码暂不可用。"); } return r.blob(); })
            .then(function (blob) {
              target.innerHTML = '<img class="qr" alt="缴款二维码" src="' + URL.createObjectURL(blob) + '">' +
                '<p class="hint">请用手机银行扫描二维码，在监管银行页面完成缴款；款项只进入预售资金监管账户。</p>';
            }, function (e) { showError(target, e); });
        });
      });
    }, function (e) { showError("notices", e); });
  }

  pages.sign = function (id) {
    var key = "wq.challenge." + id;
    render("签署合同", '<div class="card"><p class="hint">加载中…</p></div>');
    loadOrder(id).then(function (order) {
      render("签署合同", [
        '<div class="card"><h2>短信验证签署</h2><dl>',
        "<dt>房屋</dt><dd>", esc(order.unit.project), " ", esc(order.unit.building), " ", esc(order.unit.room_no), "</dd>",
        "<dt>总价款</dt><dd>", esc(yuan(order.price_fen)), "</dd>",
        "<dt>状态</dt><dd>", statusTag(order.status), "</dd></dl>",
        "<p>签署即表示您已阅读并同意合同全部条款。签署后将以您本人的数字证书生成电子签名。</p>",
        '<button id="challenge" class="secondary">获取短信验证码</button>',
        '<div id="challenge-msg"></div>',
        '<label for="sign-code">短信验证码</label>',
        '<input id="sign-code" inputmode="numeric" maxlength="6" autocomplete="one-time-code" placeholder="6 位验证码">',
        '<button id="sign">确认签署</button><div id="sign-msg"></div></div>',
        '<a class="button secondary" href="#/contract/', esc(order.id), '">返回合同</a>',
      ].join(""));
      on("challenge", "click", function (ev) {
        busy(ev.target, api("POST", "/api/v1/contracts/" + encodeURIComponent(id) + "/signatures/challenge"))
          .then(function (c) {
            sessionStorage.setItem(key, c.challenge_id);
            document.getElementById("challenge-msg").innerHTML = '<p class="ok">验证码已发送至 ' +
              esc(c.phone_masked) + "，" + Math.round(c.expires_in / 60) + " 分钟内有效。</p>";
          }, function (e) { showError("challenge-msg", e); });
      });
      on("sign", "click", function (ev) {
        var challenge = sessionStorage.getItem(key);
        if (!challenge) { showError("sign-msg", "请先获取短信验证码。"); return; }
        var code = document.getElementById("sign-code").value.trim();
        if (!/^\d{4,8}$/.test(code)) { showError("sign-msg", "请输入短信中的验证码。"); return; }
        busy(ev.target, api("POST", "/api/v1/contracts/" + encodeURIComponent(id) + "/signatures",
          { challenge_id: challenge, code: code })).then(function () {
          sessionStorage.removeItem(key);
          go("#/done/" + id);
        }, function (e) { showError("sign-msg", e); });
      });
    }, function (e) { showError(view, e); });
  };

  pages.done = function (id) {
    render("签署结果", '<div class="card"><p class="hint">加载中…</p></div>');
    loadOrder(id).then(function (order) {
      var body;
      if (isContract(order.status)) {
        body = '<h2>签约完成</h2><p>' + statusTag(order.status) + "</p>" +
          '<p>合同编号</p><p class="big" id="contract-number">' + esc(order.contract_number) + "</p>" +
          '<div id="password-box"><button id="show-password">查看合同密码（仅显示一次）</button></div>' +
          '<p class="hint">合同密码也已通过短信发送给各买受人，请妥善保存。凭合同编号和密码可在「合同查询」中核验合同真伪。</p>' +
          pdfButton();
      } else if (order.status === "awaiting_seal") {
        body = "<h2>您已完成签署</h2><p>" + statusTag(order.status) + "</p>" +
          "<p>所有买受人已签署，等待开发企业盖章。盖章后您将收到合同编号和查询密码短信。</p>";
      } else if (order.status === "awaiting_signatures" && myParty(order) && myParty(order).signed_at) {
        body = "<h2>您已完成签署</h2><p>" + statusTag(order.status) + "</p>" +
          "<p>等待其他买受人签署，全部签署后由开发企业盖章。</p>";
      } else {
        body = "<h2>签署状态</h2><p>" + statusTag(order.status) + "</p>";
      }
      var waiting = order.status === "awaiting_seal" || order.status === "awaiting_signatures";
      var subscribe = waiting && sessionStorage.getItem(WX_USER) ?
        '<div class="card"><h2>消息提醒</h2><p class="hint">盖章完成、首付款到账时，通过微信通知您（短信照常发送）。</p>' +
        '<button id="subscribe" class="secondary">订阅微信消息提醒</button><div id="subscribe-msg"></div></div>' : "";
      render("签署结果", subscribe + '<div class="card">' + body +
        '<button id="refresh" class="secondary">刷新状态</button>' +
        '<a class="button secondary" href="#/contract/' + esc(order.id) + '">查看合同与进度</a>' +
        '<a class="button secondary" href="#/contracts">我的合同</a></div>');
      on("refresh", "click", function () { route(); });
      on("subscribe", "click", function () { askSubscription(AFTER_SIGNING); });
      on("download-pdf", "click", function (ev) { downloadPdf(ev.target, order); });
      on("show-password", "click", function (ev) {
        busy(ev.target, api("POST", "/api/v1/contracts/" + encodeURIComponent(order.id) + "/password"))
          .then(function (shown) {
            document.getElementById("password-box").innerHTML =
              '<p>合同密码</p><p class="big" id="contract-password">' + esc(shown.password) + "</p>" +
              '<p class="hint">此密码只显示这一次，请立即记下。</p>';
          }, function (e) {
            document.getElementById("password-box").innerHTML =
              '<p class="hint" id="password-gone">' + esc(e.message || "无法显示合同密码。") + "</p>";
          });
      });
    }, function (e) { showError(view, e); });
  };

  /* wx.requestSubscribeMessage, played by the page: WeChat's own sheet lists the messages
   * and the user allows or cancels; WeChat records the choice (the mock here), and the
   * mini program tells our server, which then may send one message per "allow". */
  function askSubscription(keys) {
    api("GET", "/api/v1/me/wechat-subscriptions").then(function (offered) {
      var titles = (offered.subscriptions || []).filter(function (t) {
        return keys.indexOf(t.key) >= 0;
      });
      var sheet = document.createElement("div");
      sheet.className = "sheet";
      sheet.setAttribute("role", "dialog");
      sheet.setAttribute("aria-label", "订阅消息");
      sheet.innerHTML = '<div class="card"><h2>「网签」申请向你发送以下消息</h2><ul class="list">' +
        titles.map(function (t) { return "<li>" + esc(t.title) + "</li>"; }).join("") +
        '</ul><div class="row"><button id="sheet-cancel" class="secondary">取消</button>' +
        '<button id="sheet-allow">允许</button></div></div>';
      document.body.appendChild(sheet);
      function answer(choice) {
        sheet.remove();
        var results = {};
        titles.forEach(function (t) { results[t.template_id] = choice; });
        api("POST", "/mock/wechat/subscribe/request", {
          user: sessionStorage.getItem(WX_USER), results: results,
        }).then(function (wx) {
          delete wx.errMsg;
          return api("POST", "/api/v1/me/wechat-subscriptions", { results: wx });
        }).then(function (now) {
          var on = (now.subscriptions || []).filter(function (t) {
            return keys.indexOf(t.key) >= 0 && t.remaining > 0;
          });
          document.getElementById("subscribe-msg").innerHTML = on.length ?
            '<p class="ok" id="subscribed">已订阅：' + on.map(function (t) { return esc(t.title); }).join("、") + "</p>" :
            '<p class="hint">未订阅微信消息，将仅通过短信通知您。</p>';
        }, function (e) { showError("subscribe-msg", e); });
      }
      document.getElementById("sheet-allow").addEventListener("click", function () { answer("accept"); });
      document.getElementById("sheet-cancel").addEventListener("click", function () { answer("reject"); });
    }, function (e) { showError("subscribe-msg", e); });
  }

  /* ---------------------------------------------------------------- 退房 (cancellation) */

  pages.cancel = function (orderId) {
    render("申请退房", '<div class="card"><p class="hint">加载中…</p></div>');
    loadOrder(orderId).then(function (order) {
      var me = myParty(order);
      render("申请退房", [
        '<div class="card"><h2>申请退房</h2><dl>',
        "<dt>房屋</dt><dd>", esc(order.unit.project), " ", esc(order.unit.building), " ", esc(order.unit.room_no), "</dd>",
        "<dt>合同编号</dt><dd>", esc(order.contract_number), "</dd></dl>",
        "<p>退房须全体买受人重新签署《解除协议》，开发企业盖章，并经主管部门审核。审核通过后合同注销，",
        "已缴入预售资金监管账户的款项全部原路退回。</p>",
        "<fieldset><legend>申请注销人</legend>",
        (order.parties || []).map(function (p) {
          return '<label class="check"><input type="checkbox" name="applicant" value="' + esc(p.id) + '"' +
            (me && p.id === me.id ? " checked" : "") + "> " + esc(p.name) + "</label>";
        }).join(""),
        "</fieldset>",
        '<label for="cancel-reason">退房原因</label>',
        '<textarea id="cancel-reason" maxlength="200" rows="3" placeholder="请填写退房原因"></textarea>',
        '<button id="cancel-submit">提交退房申请</button><div id="cancel-msg"></div></div>',
        '<a class="button secondary" href="#/contract/', esc(order.id), '">返回合同</a>',
      ].join(""));
      on("cancel-submit", "click", function (ev) {
        var reason = document.getElementById("cancel-reason").value.trim();
        if (!reason) { showError("cancel-msg", "请填写退房原因。"); return; }
        var applicants = Array.prototype.filter.call(document.querySelectorAll("input[name=applicant]"),
          function (box) { return box.checked; }).map(function (box) { return box.value; });
        busy(ev.target, api("POST", "/api/v1/contracts/" + encodeURIComponent(order.id) + "/cancellation",
          { reason: reason, applicants: applicants })).then(function (c) {
          go("#/cancellation/" + c.id);
        }, function (e) { showError("cancel-msg", e); });
      });
    }, function (e) { showError(view, e); });
  };

  pages.cancellation = function (id) {
    var key = "wq.cancel-challenge." + id;
    var base = "/api/v1/cancellations/" + encodeURIComponent(id);
    render("解除协议", '<div class="card"><p class="hint">加载中…</p></div>');
    Promise.all([api("GET", base), api("GET", base + "/document"), api("GET", "/api/v1/me")]).then(function (all) {
      var c = all[0];
      var agreement = all[1].document || {};
      var terms = agreement.terms || {};
      var ended = terms.contract || {};
      return loadOrder(c.order_id).then(function (order) {
        var me = myParty(order);
        var mine = c.signers.filter(function (s) { return me && s.party_id === me.id; })[0];
        var canSign = c.status === "awaiting_signatures" && mine && !mine.signed_at;
        render("解除协议", [
          '<div class="card"><h2>', esc(terms.title || "解除协议"), "</h2>",
          '<p><span class="status" data-cancel-status="', esc(c.status), '">', esc(CANCEL_STATUS[c.status] || c.status), "</span></p>",
          "<dl><dt>合同编号</dt><dd>", esc(c.contract_number), "</dd>",
          ended.filing_number ? "<dt>备案号</dt><dd>" + esc(ended.filing_number) + "</dd>" : "",
          "<dt>房屋</dt><dd>", esc(c.unit.project), " ", esc(c.unit.building), " ", esc(c.unit.room_no), "</dd>",
          "<dt>解除原因</dt><dd>", esc(c.reason), "</dd>",
          "<dt>申请注销人</dt><dd>", esc((c.applicants || []).join("、")), "</dd>",
          "<dt>已缴监管资金</dt><dd>", esc(yuan(terms.refund_fen || 0)), "（全部退还买受人）</dd></dl></div>",
          contractText(agreement.text),
          '<div class="card"><h2>签署情况</h2><ul class="list">',
          c.signers.map(function (s) {
            return "<li>" + esc(s.role === "seal" ? "开发企业：" : "买受人：") + esc(s.name) + " " +
              (s.signed_at ? '<span class="status signed">已签署 ' + esc(when(s.signed_at)) + "</span>"
                : '<span class="status">未签署</span>') + "</li>";
          }).join(""), "</ul></div>",
          c.decision_reason ? '<div class="card"><p class="error">' + esc(c.decision_reason) + "</p></div>" : "",
          canSign ? [
            '<div class="card"><h2>短信验证签署解除协议</h2>',
            '<p class="hint">签署前须在 10 分钟内完成人脸核身。</p>',
            '<button id="cancel-challenge" class="secondary">获取短信验证码</button><div id="cancel-challenge-msg"></div>',
            '<label for="cancel-code">短信验证码</label>',
            '<input id="cancel-code" inputmode="numeric" maxlength="6" autocomplete="one-time-code" placeholder="6 位验证码">',
            '<button id="cancel-sign">确认签署解除协议</button><div id="cancel-sign-msg"></div></div>',
          ].join("") : "",
          '<a class="button secondary" href="#/contract/', esc(c.order_id), '">返回合同</a>',
        ].join(""));
        on("cancel-challenge", "click", function (ev) {
          busy(ev.target, api("POST", base + "/signatures/challenge")).then(function (ch) {
            sessionStorage.setItem(key, ch.challenge_id);
            document.getElementById("cancel-challenge-msg").innerHTML = '<p class="ok">验证码已发送至 ' +
              esc(ch.phone_masked) + "</p>";
          }, function (e) {
            showError("cancel-challenge-msg", e);
            if (e.code === "face_check_stale") {
              document.getElementById("cancel-challenge-msg").insertAdjacentHTML("beforeend",
                '<a class="button" href="#/face">重新人脸核身</a>');
            }
          });
        });
        on("cancel-sign", "click", function (ev) {
          var challenge = sessionStorage.getItem(key);
          if (!challenge) { showError("cancel-sign-msg", "请先获取短信验证码。"); return; }
          var code = document.getElementById("cancel-code").value.trim();
          busy(ev.target, api("POST", base + "/signatures", { challenge_id: challenge, code: code })).then(function () {
            sessionStorage.removeItem(key);
            route();
          }, function (e) { showError("cancel-sign-msg", e); });
        });
      });
    }).then(null, function (e) { showError(view, e); });
  };

  pages.contracts = function () {
    render("我的合同", '<div class="card"><p class="hint">加载中…</p></div>');
    api("GET", "/api/v1/contracts").then(function (answer) {
      var items = answer.items || [];
      render("我的合同", '<div class="card"><ul class="list" id="contract-list">' + (items.length ? items.map(function (o) {
        return '<li><a href="#/contract/' + esc(o.id) + '"><b>' + esc(o.unit.project) + " " + esc(o.unit.building) +
          " " + esc(o.unit.room_no) + "</b><br>" + statusTag(o.status) +
          (o.contract_number ? ' <span class="hint">合同编号 ' + esc(o.contract_number) + "</span>" : "") +
          '<br><span class="hint">总价 ' + esc(yuan(o.price_fen)) + "</span></a></li>";
      }).join("") : '<li class="hint">暂无合同。扫描售楼处的签约二维码开始签约。</li>') + "</ul></div>");
    }, function (e) { showError(view, e); });
  };

  pages.verify = function () {
    render("合同查询", [
      '<div class="card"><h2>合同真伪查询</h2>',
      '<label for="number">合同编号或备案号</label><input id="number" autocomplete="off" placeholder="合同编号或备案号">',
      '<label for="password">查询密码</label>',
      '<input id="password" inputmode="numeric" maxlength="8" autocomplete="off" placeholder="8 位查询密码">',
      '<button id="query">查询</button><div id="verify-msg"></div></div>',
    ].join(""));
    on("query", "click", function (ev) {
      var q = "number=" + encodeURIComponent(document.getElementById("number").value.trim()) +
        "&password=" + encodeURIComponent(document.getElementById("password").value.trim());
      busy(ev.target, api("GET", "/api/v1/public/verify?" + q)).then(function (r) {
        var box = document.getElementById("verify-msg");
        if (!r.genuine) { showError(box, "未查询到该合同，请核对合同编号和密码。"); return; }
        box.innerHTML = '<p class="ok" id="genuine">合同真实有效</p><dl>' +
          "<dt>合同编号</dt><dd>" + esc(r.contract_number) + "</dd>" +
          "<dt>状态</dt><dd>" + statusTag(r.status) + "</dd>" +
          (r.filing_number ? "<dt>备案号</dt><dd>" + esc(r.filing_number) + "</dd><dt>备案时间</dt><dd>" +
            esc(when(r.filed_at)) + "</dd>" : "") +
          (r.unit ? "<dt>房屋</dt><dd>" + esc(r.unit.project) + " " + esc(r.unit.building) + " " + esc(r.unit.room_no) + "</dd>" +
            "<dt>坐落</dt><dd>" + esc(r.unit.address) + "</dd><dt>建筑面积</dt><dd>" + esc(r.unit.building_area) +
            " ㎡</dd><dt>用途</dt><dd>" + esc(r.unit.use) + "</dd>" : "") +
          (r.company ? "<dt>出卖人</dt><dd>" + esc(r.company) + "</dd>" : "") +
          (r.parties || []).map(function (p) {
            return "<dt>" + esc(p.role === "buyer" ? "买受人" : p.role || "签约方") + "</dt><dd>" +
              esc(p.name || "") + "</dd>";
          }).join("") +
          "<dt>签约完成</dt><dd>" + esc(when(r.completed_at)) + "</dd></dl>";
      }, function (e) { showError("verify-msg", e); });
    });
  };

  /* The QR code printed on a signed contract: the platform's signed payload, checked. */
  pages.qr = function () {
    render("合同核验", '<div class="card"><p class="hint">正在核验…</p></div>');
    api("GET", "/api/v1/public/verify-qr?code=" + encodeURIComponent(location.href)).then(function (r) {
      if (!r.genuine) {
        render("合同核验", '<div class="card"><h2>核验未通过</h2><p class="error" role="alert" id="qr-bad">' +
          "此二维码不是平台为该合同签发的，合同可能被伪造或篡改。</p></div>");
        return;
      }
      render("合同核验", '<div class="card"><h2>合同核验</h2><p class="ok" id="qr-genuine">二维码由平台签发，合同真实</p><dl>' +
        "<dt>合同编号</dt><dd>" + esc(r.contract_number) + "</dd>" +
        "<dt>签约时状态</dt><dd>" + statusTag(r.status_at_signing) + "</dd>" +
        "<dt>当前状态</dt><dd>" + statusTag(r.status) + "</dd>" +
        "<dt>签约时间</dt><dd>" + esc(when(r.signed_at)) + "</dd>" +
        '<dt>文件摘要</dt><dd class="hash">' + esc(r.document_hash) + "</dd></dl>" +
        '<p class="hint">凭合同编号和查询密码可查看更多信息。</p>' +
        '<a class="button secondary" href="#/verify">合同查询</a></div>');
    }, function (e) { showError(view, e); });
  };

  /* ---------------------------------------------------------------- router */

  var PUBLIC = { login: true, "phone-login": true, verify: true, scan: true, qr: true };

  function route() {
    var parts = (location.hash.replace(/^#\/?/, "") || "home").split("/");
    var name = parts[0];
    var arg = parts.slice(1).join("/");
    var page = pages[name];
    if (!page) { name = "home"; page = pages.home; }
    if (!PUBLIC[name] && !token()) { page = pages.login; name = "login"; }
    window.scrollTo(0, 0);
    page(arg ? decodeURIComponent(arg) : "");
  }

  window.addEventListener("hashchange", route);
  refreshWho().then(null, function () { whoEl.textContent = "未登录"; });
  route();
})();

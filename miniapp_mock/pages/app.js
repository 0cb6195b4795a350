/* 网签小程序 H5（演示）: hash routing, fetch with a bearer token kept in sessionStorage.
 * Talks to /api/v1/... like the mini program, and to /mock/... for wx.login and the demo
 * SMS inbox. No libraries, no network beyond this server. */
"use strict";

(function () {
  var TOKEN = "wq.token";
  var PENDING = "wq.pendingScene";
  var FACE = "wq.faceSession";
  var WX_USER = "wq.wechatUser";  // the mock WeChat user, for the mock wx APIs
  var RETURN = "wq.returnTo";  // the page to come back to after logging in or a face check
  var FACE_WHY = "wq.faceWhy";  // why the face check is asked for again (shown on its page)
  var TITLE = "wq.checkedTitle";  // the title the seller just checked (房源验证), for the form
  var CONTEXT = "wq.context";  // the flat being signed ("明湖花园1栋2单元603室"), shown on every step
  // The news a buyer can ask for after signing (our template keys; the API gives each
  // its template id, which is the mini program's own, configured in its WeChat console).
  var AFTER_SIGNING = ["contract_signed", "down_payment_arrived"];
  var LOADING = '<div class="card"><p class="hint">加载中…</p></div>';
  var view = document.getElementById("view");
  var titleEl = document.getElementById("title");
  var whoEl = document.getElementById("who");

  var STATUS = {
    draft: "草稿",
    awaiting_signatures: "待签署",
    awaiting_seal: "待开发企业盖章",
    awaiting_submit: "已完成签字·待出卖人提交",
    signed: "已签约",
    filing_pending: "已签约·待备案",
    filing_rejected: "备案退回",
    filed: "已备案",
    cancellation_pending: "注销办理中",
    transferred: "已过户",
    cancelled: "已注销",
    expired: "已过期",
    voided: "已作废",
  };
  // A sealed (or submitted), numbered contract, whatever filing, a cancellation or the
  // transfer of the title is doing to it.
  var CONTRACT = ["signed", "filing_pending", "filing_rejected", "filed", "cancellation_pending", "transferred"];
  function isContract(status) { return CONTRACT.indexOf(status) >= 0; }
  // What a cancellation may be started from (not while one is open, not after the transfer).
  var CANCELLABLE = ["signed", "filing_pending", "filing_rejected", "filed"];
  var CANCEL_STATUS = {
    awaiting_signatures: "待买受人签署",
    awaiting_seal: "待开发企业盖章",
    awaiting_review: "待主管部门审核",
    awaiting_submit: "已完成签字·待发起方提交",
    approved: "已注销",
    rejected: "已驳回",
    withdrawn: "已撤回",
  };
  // A resale's cancellation (存量房合同注销线上) is signed by sellers and buyers alike.
  var RESALE_CANCEL_STATUS = { awaiting_signatures: "待买卖双方签署" };
  function cancelStatus(status, resale) {
    return (resale && RESALE_CANCEL_STATUS[status]) || CANCEL_STATUS[status] || status;
  }
  var ROLE = { buyer: "买受人", seller: "出卖人", seal: "开发企业" };
  var ID_TYPE = {
    resident_id: "居民身份证",
    hmt_residence_permit: "港澳台居民居住证",
    foreign_permanent_residence: "外国人永久居留身份证",
    hk_macao_permit: "港澳居民来往内地通行证",
    taiwan_permit: "台湾居民来往大陆通行证",
    passport: "护照",
  };
  var PAYMENT = {
    lump_sum: "一次性付款",
    installments: "分期付款",
    commercial_loan: "商业贷款",
    provident_fund_loan: "公积金贷款",
    combined_loan: "组合贷款",
  };
  var TAXES = { by_law: "按规定各自承担", buyer: "全部由买受人承担", seller: "全部由出卖人承担" };
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
  // Every event the API records on a contract's timeline (tests/miniapp_mock/test_labels.py
  // fails when one has no label here). Events named after an order's or a cancellation's
  // status are labelled for every status.
  var EVENT = {
    created: "创建合同订单",
    issued: "生成签约二维码",
    scanned: "扫码查看合同",
    scan_refused: "扫码被拒绝",
    sign_code_sent: "发送签署验证码",
    signed: "签约方签署",
    declined: "签约方拒签",
    draft: "合同订单草稿",
    awaiting_signatures: "合同订单待签署",
    awaiting_seal: "买受人全部签署，待开发企业盖章",
    awaiting_submit: "买卖各方全部签字，待出卖人提交",
    submitted: "出卖人提交合同",
    seal_code_sent: "发送盖章验证码",
    seal_reminded: "提醒开发企业盖章",
    sealed: "开发企业盖章",
    document_opened: "阅读合同全文",
    pdf_finished: "生成签署版 PDF",
    completed: "签约完成",
    password_shown: "查看合同密码",
    filing_pending: "合同待备案",
    filing_submitted: "提交备案",
    filing_rejected: "备案退回",
    filing_resubmitted: "重新提交备案",
    filed: "备案完成",
    transfer_registered: "转移登记完成",
    transferred: "已过户",
    cancellation_pending: "合同注销办理中",
    cancellation_started: "申请注销（退房）",
    cancellation_code_sent: "发送解除协议签署验证码",
    cancellation_signed: "签署解除协议",
    cancellation_awaiting_signatures: "解除协议待签署",
    cancellation_awaiting_seal: "解除协议待开发企业盖章",
    cancellation_awaiting_review: "注销申请待主管部门审核",
    cancellation_awaiting_submit: "注销协议各方已签署，待发起方提交",
    cancellation_seal_code_sent: "发送解除协议盖章验证码",
    cancellation_sealed: "开发企业盖章解除协议",
    cancellation_approved: "注销申请通过",
    cancellation_withdrawn: "撤回注销申请",
    cancellation_rejected: "注销申请被驳回",
    cancelled: "合同已注销",
    voided: "合同订单作废",
    expired: "合同订单过期",
    draft_discarded: "草稿超时作废",
    personal_data_purged: "订单已删除，个人信息已清除",
  };
  // A resale says some of it in the words of seed 004.
  var RESALE_EVENT = {
    created: "出卖人填写合同",
    issued: "生成电子合同订单",
    voided: "注销电子合同订单",
    expired: "未在期限内完成签字，合同已删除",
    cancellation_started: "申请注销网签合同",
    cancellation_code_sent: "发送注销协议签署验证码",
    cancellation_signed: "签署注销协议",
  };
  function eventLabel(ev, resale) {
    var detail = ev.detail || {};
    if ((ev.type === "signed" || ev.type === "declined") && ROLE[detail.role]) {
      return ROLE[detail.role] + (ev.type === "signed" ? "签署" : "拒签");
    }
    return (resale && RESALE_EVENT[ev.type]) || EVENT[ev.type] || ev.type;
  }

  function esc(value) {
    return String(value === null || value === undefined ? "" : value).replace(/[&<>"']/g,
      function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]; });
  }
  function yuan(fen) {
    var n = Number(fen || 0);
    var whole = Math.floor(n / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return whole + "." + String(n % 100).padStart(2, "0") + " 元";
  }
  /* Areas as people write them: two decimals and ㎡ (integers of 0.0001 m², or m² text). */
  function area(units) {
    if (units === null || units === undefined || units === "") { return "-"; }
    var hundredths = typeof units === "string"
      ? Math.round(Number(units) * 100) : Math.round(Number(units) / 100);
    if (isNaN(hundredths)) { return String(units) + " ㎡"; }
    return Math.floor(hundredths / 100) + "." + String(hundredths % 100).padStart(2, "0") + " ㎡";
  }
  /* Beijing time, written 2026年11月29日 14:30. */
  function when(iso) {
    if (!iso) { return "-"; }
    var d = new Date(new Date(iso).getTime() + 8 * 3600 * 1000);
    return d.getUTCFullYear() + "年" + (d.getUTCMonth() + 1) + "月" + d.getUTCDate() + "日 " +
      String(d.getUTCHours()).padStart(2, "0") + ":" + String(d.getUTCMinutes()).padStart(2, "0");
  }
  /* A calendar date (2028-06-30) as 2028年6月30日. */
  function chineseDate(iso) {
    var parts = /^(\d{4})-(\d{2})-(\d{2})/.exec(iso || "");
    return parts ? parts[1] + "年" + Number(parts[2]) + "月" + Number(parts[3]) + "日" : (iso || "-");
  }
  /* The flat as people write it: 明湖花园1栋2单元603室 (the API's label, else built here). */
  function flatLabel(unit) {
    if (!unit) { return ""; }
    if (unit.label) { return unit.label; }
    var part = unit.unit ? (/单元$/.test(unit.unit) ? unit.unit : unit.unit + "单元") : "";
    var room = /室$/.test(unit.room_no || "") ? unit.room_no : (unit.room_no || "") + "室";
    return (unit.project || "") + (unit.building || "") + part + room;
  }
  /* Yuan as typed ("1,860,000.29", "52 万" is not accepted) to integer fen, by the digits
   * alone: never through a float (0.29 * 100 is 28.999999999999996). null when invalid. */
  function fenFromYuan(text) {
    var value = String(text || "").replace(/[\s,，]/g, "").replace(/元$/, "");
    var parts = /^(\d{1,11})(?:\.(\d{0,2}))?$/.exec(value);
    if (!parts) { return null; }
    return parseInt(parts[1] + ((parts[2] || "") + "00").slice(0, 2), 10);
  }
  function token() { return sessionStorage.getItem(TOKEN); }
  function go(hash) {
    if (location.hash === hash) { route(); } else { location.hash = hash; }
  }

  function ApiError(status, problem) {
    this.status = status;
    this.problem = problem || {};
    this.code = (problem && problem.code) || "";
    this.message = (problem && (problem.detail || problem.errmsg || problem.title)) ||
      ("请求失败（" + status + "）");
  }

  /* Each route is a generation: what an earlier page asked for and gets answered after the
   * user moved on (a refresh still loading when a link is tapped) must not draw over the
   * page now shown, so its answer is dropped (the promise never settles). */
  var generation = 0;
  function current(promise) {
    var asked = generation;
    function stale() { return new Promise(function () { return null; }); }
    return promise.then(function (value) { return asked === generation ? value : stale(); },
      function (error) { if (asked !== generation) { return stale(); } throw error; });
  }

  function api(method, path, body) { return current(request(method, path, body)); }

  function request(method, path, body) {
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
  /* A button says what it is doing while its request runs ("签署中…"), then what it was. */
  function busy(button, promise, doing) {
    var label = button.textContent;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    if (doing) { button.textContent = doing; }
    function done() {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      if (doing) { button.textContent = label; }
    }
    return promise.then(function (v) { done(); return v; }, function (e) { done(); throw e; });
  }

  /* Which flat and which step of the signing journey, under the header. */
  var JOURNEY = ["登录", "个人信息授权", "实名认证", "人脸核身", "阅读合同", "确认签署", "签署完成"];
  var contextEl = document.getElementById("context");
  function showContext(stepName, label) {
    if (label) { sessionStorage.setItem(CONTEXT, label); }
    var flat = label || sessionStorage.getItem(CONTEXT);
    var step = JOURNEY.indexOf(stepName);
    if (!flat || step < 0) { contextEl.hidden = true; contextEl.innerHTML = ""; return; }
    contextEl.hidden = false;
    contextEl.innerHTML = '<span id="signing-flat">您正在签署：<b>' + esc(flat) + "</b></span>" +
      '<span class="step" id="signing-step">第 ' + (step + 1) + " 步，共 " + JOURNEY.length + " 步 · " +
      esc(stepName) + "</span>" + '<div class="progress" aria-hidden="true"><span style="width:' +
      Math.round((step + 1) * 100 / JOURNEY.length) + '%"></span></div>';
  }

  /* On the way to signing a contract: a scanned link waits, or the face check was asked
   * for again on the way to a signature. Only then do the steps before the contract name
   * its flat (a label left from an earlier journey would name the wrong one). */
  function signingJourney() {
    var back = sessionStorage.getItem(RETURN) || "";
    return !!sessionStorage.getItem(PENDING) || /^#\/(sign|contract|cancellation)\//.test(back);
  }

  /* An error stands next to its field, and goes once the field is changed. */
  document.addEventListener("input", function (ev) {
    var card = ev.target.closest && ev.target.closest(".card");
    if (!card) { return; }
    Array.prototype.forEach.call(card.querySelectorAll("p.error"), function (box) { box.remove(); });
  });

  function refreshWho() {
    if (!token()) { whoEl.textContent = "未登录"; return Promise.resolve(null); }
    return request("GET", "/api/v1/me").then(function (me) {  // the header, on any page
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
      var back = sessionStorage.getItem(RETURN);
      if (back) { sessionStorage.removeItem(RETURN); go(back); return; }
      var pending = sessionStorage.getItem(PENDING);
      if (pending && me.identity_level === "none") { go(me.pi_consent_at ? "#/real-name" : "#/consent"); return; }
      if (pending && me.identity_level === "real_name") { go("#/face"); return; }
      if (pending) { go("#/scan/" + pending); return; }
      go("#/home");
    }, function (e) { showError(view, e); });
  }

  /* A signature needs a face check passed within the last few minutes (face_check_stale):
   * through the face check, then back to this very page. */
  function faceAgain(error) {
    sessionStorage.setItem(RETURN, location.hash);
    sessionStorage.setItem(FACE_WHY, error.message || String(error));
    go("#/face");
  }
  /* Errors of a signing step: a stale face check leads through the face check and back. */
  function signingError(box, error) {
    if (error.code === "face_check_stale") { faceAgain(error); return; }
    showError(box, error);
  }
  /* A QR image that needs the bearer (an <img> cannot send it): fetched, shown as a blob. */
  function showQr(box, path, alt) {
    current(fetch(path, { headers: { Authorization: "Bearer " + token() } })).then(function (r) {
      if (r.ok) { return r.blob(); }
      return r.json().then(function (problem) { throw new ApiError(r.status, problem); },
        function () { throw new ApiError(r.status, null); });
    }).then(function (blob) {
      var target = document.getElementById(box);
      if (target) {
        target.innerHTML = '<img class="qr" alt="' + esc(alt) + '" src="' + URL.createObjectURL(blob) + '">';
      }
    }, function (e) { showError(box, e); });
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

  function options(labels, chosen) {
    return Object.keys(labels).map(function (key) {
      return '<option value="' + esc(key) + '"' + (key === chosen ? " selected" : "") + ">" +
        esc(labels[key]) + "</option>";
    }).join("");
  }
  function idTypeSelect(id, chosen) {
    return '<select id="' + esc(id) + '">' + options(ID_TYPE, chosen) + "</select>";
  }

  /* ---------------------------------------------------------------- pages */

  var pages = {};

  pages.login = function () {
    if (signingJourney()) { showContext("登录"); }
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
      }), "登录中…").then(function (session) {
        sessionStorage.setItem(TOKEN, session.token);
        sessionStorage.setItem(WX_USER, user);
        refreshWho();
        if (!session.phone_bound) { go("#/phone"); } else { next(); }
      }, function (e) { showError("login-msg", e); });
    });
  };

  function phoneForm(mode) {
    var bind = mode === "bind";
    if (signingJourney()) { showContext("登录"); }
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
      busy(ev.target, api("POST", "/api/v1/auth/sms/send", { phone: phone }), "发送中…").then(function () {
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
      busy(ev.target, call, bind ? "绑定中…" : "登录中…").then(function () { refreshWho(); next(); },
        function (e) { showError("phone-msg", e); });
    });
  }
  pages.phone = function () { phoneForm("bind"); };
  pages["phone-login"] = function () { phoneForm("login"); };

  pages.home = function () {
    render("网上签约", '<div class="card"><p class="hint">加载中…</p></div>');
    current(refreshWho()).then(function (me) {
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
        "<dt>认证状态</dt><dd>", esc(LEVEL[level] || "未实名"), "</dd></dl></div>",
        '<div class="card" id="todo"><h2>我的待办</h2><p class="hint">加载中…</p></div>',
        '<div class="card steps"><h2>签约步骤</h2><ul class="list">',
        "<li>", step("#/phone", "1. 绑定手机号", !!me.phone_masked), "</li>",
        "<li>", step("#/consent", "2. 个人信息授权", !!me.pi_consent_at), "</li>",
        "<li>", step("#/real-name", "3. 实名认证", level !== "none"), "</li>",
        "<li>", step("#/face", "4. 人脸核身", level === "face_verified"), "</li>",
        "<li>", step("#/scan", "5. 扫码签约", false), "</li></ul>",
        pending ? '<a class="button" href="#/scan/' + esc(pending) + '">继续签约</a>' : "",
        "</div>",
        '<div class="card"><h2>存量房（二手房）</h2>',
        '<p class="hint">房屋权利人在线签订存量房买卖合同：房源验证、填写合同、出示二维码，买卖双方扫码签署。</p>',
        '<a class="button" href="#/sell">我要卖房</a></div>',
        '<div class="card"><a class="button secondary" id="to-signatures" href="#/signatures">我的签署</a>',
        '<a class="button secondary" href="#/contracts">我的合同</a>',
        '<a class="button secondary" href="#/verify">合同查询</a>',
        '<button id="logout" class="danger">退出登录</button></div>',
      ].join(""));
      loadTodo();
      if (level !== "none") {
        api("GET", "/api/v1/me/signatures").then(function (tasks) {
          var link = document.getElementById("to-signatures");
          var count = (tasks.items || []).length;
          if (link && count) { link.textContent = "我的签署（" + count + " 项待签署）"; }
        }, function () { return null; });
      }
      on("logout", "click", function () {
        api("POST", "/api/v1/auth/logout").then(null, function () { return null; }).then(function () {
          sessionStorage.clear();
          refreshWho();
          go("#/login");
        });
      });
    }, function (e) { showError(view, e); });
  };

  /* 我的待办: for each of my contracts, what is done and what is due next (signing, the
   * deposit, the down payment), from the contract and its payment notices. */
  function loadTodo() {
    api("GET", "/api/v1/contracts").then(function (answer) {
      var items = (answer.items || []).slice(0, 5);
      return Promise.all(items.map(function (o) {
        var money = o.business_number && o.status !== "draft" && o.status !== "voided" && o.status !== "expired";
        return (money ? request("GET", "/api/v1/contracts/" + encodeURIComponent(o.id) + "/payment-notices")
          .then(null, function () { return { items: [] }; }) : Promise.resolve({ items: [] }))
          .then(function (notices) { return { order: o, notices: notices.items || [] }; });
      }));
    }).then(function (rows) {
      var box = document.getElementById("todo");
      if (!box) { return; }
      var lines = [];
      rows.forEach(function (row) {
        var o = row.order;
        var me = myParty(o);
        var link = "#/contract/" + esc(o.id);
        var due = row.notices.filter(function (n) { return !n.closed && n.status !== "cancelled"; });
        var paid = row.notices.filter(function (n) { return n.closed; });
        var done = paid.map(function (n) { return (NOTICE_KIND[n.kind] || "款项") + "已缴清"; });
        if (me && me.signed_at) { done.unshift("本人已签署"); }
        var nextStep = "";
        if (o.status === "awaiting_signatures" && me && !me.signed_at && !me.declined_at) {
          nextStep = due.some(function (n) { return n.kind === "deposit"; }) ? "缴纳定金后签署合同" : "签署合同";
        } else if (due.length) {
          nextStep = "缴纳" + (NOTICE_KIND[due[0].kind] || "款项") + " " + yuan(due[0].outstanding_fen);
        }
        lines.push('<li><a href="' + link + '"><b>' + esc(flatLabel(o.unit)) + "</b><br>" +
          '<span class="hint">当前：' + esc(STATUS[o.status] || "办理中") +
          (done.length ? "；已完成：" + esc(done.join("、")) : "") + "</span><br>" +
          (nextStep ? '<span class="todo">下一步：' + esc(nextStep) + " ›</span>" : '<span class="done">暂无待办</span>') +
          "</a></li>");
      });
      box.innerHTML = "<h2>我的待办</h2>" + (lines.length ? '<ul class="list" id="todo-list">' + lines.join("") + "</ul>"
        : '<p class="hint">暂无合同。扫描售楼处出示的签约二维码开始签约。</p>');
    }, function () {
      var box = document.getElementById("todo");
      if (box) { box.innerHTML = '<h2>我的待办</h2><p class="hint">暂无合同。</p>'; }
    });
  }

  /* 个人信息授权: the separate consent (个人信息保护法 第二十九条) before the ID number and
   * the face are collected; the API keeps which notice was agreed to, and when. */
  pages.consent = function () {
    render("个人信息授权", LOADING);
    if (signingJourney()) { showContext("个人信息授权"); }
    Promise.all([api("GET", "/api/v1/me"), api("GET", "/api/v1/me/pi-notice")]).then(function (all) {
      var me = all[0];
      var notice = all[1];
      render("个人信息授权", [
        '<div class="card" id="pi-notice"><h2>', esc(notice.title), "</h2>",
        "<p>实名认证和人脸核身将处理您的敏感个人信息。请阅读以下告知，单独同意后再继续。</p>",
        (notice.items || []).map(function (item) {
          return "<h3>" + esc(item.heading) + "</h3><p>" + esc(item.text) + "</p>";
        }).join(""),
        me.pi_consent_at ? '<p class="ok" id="pi-consented">您已于 ' + esc(when(me.pi_consent_at)) + " 同意本告知。</p>" : "",
        '<button id="pi-agree">同意</button>',
        '<button id="pi-refuse" class="secondary">不同意</button><div id="pi-msg"></div></div>',
      ].join(""));
      on("pi-agree", "click", function (ev) {
        busy(ev.target, api("POST", "/api/v1/me/pi-consent", { version: notice.version }), "提交中…")
          .then(function () { go("#/real-name"); }, function (e) { showError("pi-msg", e); });
      });
      on("pi-refuse", "click", function () {
        document.getElementById("pi-msg").innerHTML = '<p class="warn" role="status">未同意时无法在线实名认证和签约。' +
          "您可以到交易中心窗口办理，或稍后再回到本页同意。</p>";
      });
    }, function (e) { showError(view, e); });
  };

  pages["real-name"] = function () {
    render("实名认证", LOADING);
    // No ID number is asked for before the separate consent to the notice.
    api("GET", "/api/v1/me").then(function (me) {
      if (!me.pi_consent_at) { go("#/consent"); return; }
      realNameForm();
    }, function (e) { showError(view, e); });
  };

  function realNameForm() {
    if (signingJourney()) { showContext("实名认证"); }
    render("实名认证", [
      '<div class="card"><h2>实名认证</h2>',
      '<p class="hint">请填写与合同（或不动产权证书）一致的姓名和证件号码。港澳台人士、外国人士请选择对应证件，姓名须与证件一致。</p>',
      '<label for="name">姓名</label><input id="name" autocomplete="name" placeholder="请输入姓名">',
      '<label for="id-type">证件类型</label>', idTypeSelect("id-type", "resident_id"),
      '<label for="id-number">证件号码</label>',
      '<input id="id-number" maxlength="20" autocomplete="off" placeholder="居民身份证为 18 位">',
      '<button id="submit">提交认证</button><div id="rn-msg"></div></div>',
    ].join(""));
    on("submit", "click", function (ev) {
      var body = {
        name: document.getElementById("name").value.trim(),
        id_number: document.getElementById("id-number").value.trim().toUpperCase(),
        id_type: document.getElementById("id-type").value,
      };
      if (!body.name || !body.id_number) { showError("rn-msg", "请填写姓名和证件号码。"); return; }
      busy(ev.target, api("POST", "/api/v1/me/real-name", body), "提交中…").then(function () {
        refreshWho();
        go("#/face");
      }, function (e) { showError("rn-msg", e); });
    });
  }

  /* 人脸核身: the provider's page opens in this same tab (nothing for a blocker to stop);
   * its return page leads back here, and this page asks the server for the result by
   * itself: on coming back, and whenever the page is shown or focused again. */
  pages.face = function () {
    var why = sessionStorage.getItem(FACE_WHY);
    if (signingJourney()) { showContext("人脸核身"); }
    render("人脸核身", [
      '<div class="card"><h2>人脸核身</h2>',
      why ? '<p class="warn" role="alert" id="face-why">' + esc(why) + "完成后将自动返回签署页面。</p>" : "",
      "<p>签署合同前需要确认是本人操作。点击下方按钮进入核身页面，完成后将自动回到本页并显示结果。</p>",
      '<button id="start">开始人脸核身</button>',
      '<div id="face-msg" aria-live="polite"></div></div>',
    ].join(""));
    var asked = generation;
    var checking = false;
    function check() {
      var id = sessionStorage.getItem(FACE);
      if (!id || checking || asked !== generation) { return; }
      checking = true;
      var box = document.getElementById("face-msg");
      box.innerHTML = '<p class="hint" id="face-checking">正在查询核身结果…</p>';
      api("GET", "/api/v1/me/face-sessions/" + encodeURIComponent(id)).then(function (face) {
        checking = false;
        box = document.getElementById("face-msg");
        if (face.status === "passed" || face.identity_level === "face_verified") {
          sessionStorage.removeItem(FACE);
          box.innerHTML = '<p class="ok" id="face-passed">人脸核身通过。</p>';
          sessionStorage.removeItem(FACE_WHY);
          refreshWho();
          // Long enough to read, and for a screen reader to announce (aria-live), before
          // the journey goes on by itself.
          setTimeout(function () { if (asked === generation) { next(); } }, 1500);
        } else if (face.status === "pending") {
          box.innerHTML = '<p class="hint" id="face-pending">尚未完成核身。完成核身后回到本页，结果会自动显示。</p>';
        } else {
          sessionStorage.removeItem(FACE);
          showError(box, "人脸核身未通过（" + (FACE_REASON[face.reason] || "核身未完成") +
            "），请点击「开始人脸核身」重新核验。");
        }
      }, function (e) { checking = false; showError("face-msg", e); });
    }
    on("start", "click", function (ev) {
      busy(ev.target, api("POST", "/api/v1/me/face-sessions"), "正在打开核身页面…").then(function (face) {
        sessionStorage.setItem(FACE, face.id);
        location.href = sameOriginMock(face.url);
      }, function (e) { showError("face-msg", e); });
    });
    function again() { if (document.visibilityState !== "hidden") { check(); } }
    window.addEventListener("focus", again);
    document.addEventListener("visibilitychange", again);
    window.addEventListener("pageshow", again);
    window.addEventListener("hashchange", function stop() {
      window.removeEventListener("focus", again);
      document.removeEventListener("visibilitychange", again);
      window.removeEventListener("pageshow", again);
      window.removeEventListener("hashchange", stop);
    });
    check();  // back from the provider: the result, without a tap
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
    // A scanned code is where the journey goes on: it outranks a page left earlier. Before
    // anyone logs in, the link says which flat it is for, or that it can no longer be used.
    render("扫码签约", '<div class="card"><p class="hint">正在打开合同…</p><div id="scan-msg"></div></div>');
    var preview = api("GET", "/api/v1/public/scenes/" + encodeURIComponent(scene)).then(function (p) {
      sessionStorage.setItem(CONTEXT, flatLabel(p.unit));
      return p;
    });
    if (!token()) {
      preview.then(function (p) {
        if (p.state !== "open") { linkEnded(p.message, flatLabel(p.unit)); return; }
        sessionStorage.setItem(PENDING, scene);
        sessionStorage.removeItem(RETURN);
        go("#/login");
      }, function (e) { linkEnded(e.message, ""); });
      return;
    }
    preview.then(null, function () { return null; }).then(function () { return api("POST", "/api/v1/scan", { scene: scene }); }).then(function (answer) {
      sessionStorage.removeItem(PENDING);
      go(answer.cancellation_id ? "#/cancellation/" + answer.cancellation_id : "#/contract/" + answer.order.id);
    }, function (e) {
      var extra = "";
      if (e.code === "face_verification_required") {
        sessionStorage.setItem(PENDING, scene);
        sessionStorage.removeItem(RETURN);
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
        if (extra) { showContext(e.code === "face_verification_required" ? "实名认证" : "阅读合同"); }
        render("扫码签约", '<div class="card"><h2>无法打开合同</h2><p class="error" role="alert">' +
          esc(e.message) + "</p>" + extra + '<a class="button secondary" href="#/home">返回首页</a></div>');
      }
    });
  };

  /* A link that can no longer be signed says so before anyone logs in. */
  function linkEnded(message, label) {
    sessionStorage.removeItem(PENDING);
    render("扫码签约", '<div class="card"><h2>无法打开合同</h2>' +
      (label ? '<p id="ended-flat">' + esc(label) + "</p>" : "") +
      '<p class="error" role="alert">' + esc(message) + "</p>" +
      '<p class="hint">如需继续签约，请联系售楼处（或出卖人）重新出示二维码。</p>' +
      '<a class="button secondary" href="#/verify">合同查询</a></div>');
  }

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
      return "<li><b>" + esc(ROLE[p.role] || p.role) +
        "：" + esc(p.name) + "</b>" + (p.share ? "（份额 " + esc(p.share) + "）" : "") +
        '<br><span class="hint">证件 ' + esc(p.id_number_masked) + " · 手机 " + esc(p.phone_masked) +
        "</span><br>" + (p.signed_at ? '<span class="status signed">已签署 ' + esc(when(p.signed_at)) + "</span>"
          : p.declined_at ? '<span class="status voided">已拒签</span>' : '<span class="status">未签署</span>') +
        "</li>";
    }).join("");
  }

  pages.contract = function (id) {
    render("合同详情", LOADING);
    var base = "/api/v1/contracts/" + encodeURIComponent(id);
    // A draft has no document yet: its terms are read from the order.
    Promise.all([loadOrder(id), api("GET", base + "/document").then(null, function () { return {}; })])
      .then(function (both) {
        var order = both[0];
        var doc = both[1].document || {};
        var terms = doc.terms || {};
        var unit = terms.unit || {};
        var me = myParty(order);
        var resale = order.kind === "resale";
        var canSign = order.status === "awaiting_signatures" && me && !me.signed_at && !me.declined_at;
        // A new home's notices open at issue; a resale's, if supervised, at its submission.
        var hasMoney = resale
          ? !!(order.resale && order.resale.funds_supervised) && (isContract(order.status) || order.status === "cancelled")
          : !!order.business_number && order.status !== "draft";
        if (me && order.status === "awaiting_signatures") { showContext("阅读合同", flatLabel(order.unit)); }
        render("合同详情", [
          '<div class="card"><h2>', esc(terms.title || (resale ? "存量房买卖合同" : "商品房买卖合同")), "</h2>",
          "<p>", statusTag(order.status), "</p>",
          order.contract_number ? '<p>合同编号：<b id="contract-number">' + esc(order.contract_number) + "</b></p>" : "",
          "<dl>",
          "<dt>项目</dt><dd>", esc(unit.project || order.unit.project), "</dd>",
          '<dt>房屋</dt><dd id="flat">', esc(flatLabel(order.unit)), "</dd>",
          unit.address ? "<dt>坐落</dt><dd>" + esc(unit.address) + "</dd>" : "",
          unit.use ? "<dt>用途</dt><dd>" + esc(unit.use) + "</dd>" : "",
          "<dt>建筑面积</dt><dd>", esc(area(unit.building_area_units)), "</dd>",
          "<dt>套内面积</dt><dd>", esc(area(unit.inner_area_units)), "</dd>",
          "<dt>总价款</dt><dd><b>", esc(yuan(order.price_fen)), "</b></dd>",
          "<dt>付款方式</dt><dd>", esc(terms.payment_method_label || PAYMENT[order.payment_method] || order.payment_method), "</dd>",
          "<dt>定金</dt><dd>", esc(yuan(order.deposit_fen)), "</dd>",
          "<dt>首付款</dt><dd>", esc(yuan(order.down_payment_fen)), "</dd>",
          "<dt>交付日期</dt><dd>", esc(chineseDate(order.delivery_date)), "</dd>",
          "<dt>出卖人</dt><dd>", esc(order.company), "</dd>",
          "</dl></div>",
          resale ? resaleTermsHtml(order.resale) : "",
          '<div class="card"><h2>签约各方</h2><ul class="list">', partiesHtml(order), "</ul></div>",
          resale ? resaleStateHtml(order, me) : "",
          filingHtml(order),
          hasMoney ? '<div class="card" id="notices"><h2>缴款通知</h2><p class="hint">加载中…</p></div>' : "",
          contractText(doc.text),
          canSign ? '<button id="to-sign" disabled>请阅读至合同末尾</button>' +
            '<p class="read-note" id="read-note">阅读至合同末尾后，方可签署。</p>' : "",
          me && isContract(order.status) ? pdfButton() : "",
          me && isContract(order.status) ? passwordHtml(resale) : "",
          me && isContract(order.status) ? '<div class="card" id="cancellations"><h2>' + (resale ? "合同注销" : "退房") +
            '</h2><p class="hint">加载中…</p></div>' : "",
          '<div class="card"><h2>业务进度</h2><div id="timeline"><p class="hint">加载中…</p></div></div>',
          '<p class="hash">文件摘要（SHA-256）：', esc(order.document_hash || "-"), "</p>",
        ].join(""));
        loadTimeline(order);
        if (hasMoney) { watchNotices(order); }
        contractIndex();
        if (canSign) {
          // The sign button is active only once the reader reached the end of the text.
          var end = document.getElementById("text-end");
          var toSign = document.getElementById("to-sign");
          var reached = function () {
            toSign.disabled = false;
            toSign.textContent = "我已阅读，去签署";
            var note = document.getElementById("read-note");
            if (note) { note.textContent = "您已阅读至合同末尾。"; }
          };
          if (!end) { reached(); } else if (window.IntersectionObserver) {
            new IntersectionObserver(function (entries, watcher) {
              if (entries.some(function (entry) { return entry.isIntersecting; })) { reached(); watcher.disconnect(); }
            }).observe(end);
          } else { reached(); }
          toSign.addEventListener("click", function () { go("#/sign/" + order.id); });
        }
        if (me && isContract(order.status)) { loadCancellations(order); }
        on("download-pdf", "click", function (ev) { downloadPdf(ev.target, order); });
        if (me && isContract(order.status)) { passwordControls(order); }
        // A party who was shown the whole text: the timeline keeps who opened which
        // document and when (the evidence that it was read before signing).
        if (me && doc.text && order.document_hash) {
          api("POST", "/api/v1/contracts/" + encodeURIComponent(order.id) + "/document/opened",
            { document_hash: order.document_hash }).then(null, function () { return null; });
        }
      }, function (e) { showError(view, e); });
  };

  /* What a resale contract says beyond a new home's: read before the sign button. */
  function resaleTermsHtml(r) {
    if (!r) { return ""; }
    function account(a) {
      return esc(a.account_name) + " " + esc(a.account_number) + "（" + esc(a.bank_name) + "）";
    }
    return [
      '<div class="card" id="resale-terms"><h2>房屋权属与交易资金</h2>',
      r.mortgaged ? '<p class="warn" id="mortgaged"><b>已抵押</b>：该房屋已设定抵押。出卖人应在办理转移登记前解除抵押，请知悉后再签署。</p>' : "",
      "<dl><dt>不动产权证号</dt><dd id=\"certificate-no\">", esc(r.certificate_no), "</dd>",
      "<dt>登记日期</dt><dd>", esc(chineseDate(r.registered_on)), "</dd>",
      "<dt>抵押情况</dt><dd>", r.mortgaged ? '<span class="status mortgaged">已抵押</span>' : "未登记抵押", "</dd>",
      "<dt>共有性质</dt><dd>", esc(r.co_ownership_label), "</dd>",
      "<dt>税费承担</dt><dd id=\"taxes\">", esc(r.taxes_borne_by_label), "</dd>",
      "<dt>资金监管</dt><dd id=\"supervision\">",
      r.funds_supervised ? "是，交易资金存入存量房交易资金监管账户" : "否，买卖双方自行交割交易资金", "</dd>",
      r.supervised_account ? "<dt>监管账户</dt><dd id=\"supervised-account\">" + account(r.supervised_account) + "</dd>" : "",
      r.seller_account ? "<dt>出卖人收款账户</dt><dd id=\"seller-account\">" + account(r.seller_account) + "</dd>" : "",
      "</dl>",
      r.funds_supervised ? '<p class="hint">合同提交后，买受人按缴款通知将定金、首付款存入监管账户；转移登记完成后划入出卖人收款账户；合同注销的，全部退还买受人。</p>' : "",
      "</div>",
    ].join("");
  }

  /* Where a resale stands for this party: the seller manages the order and submits it. */
  function resaleStateHtml(order, me) {
    var seller = me && me.role === "seller";
    var manage = seller && ["draft", "awaiting_signatures", "awaiting_submit"].indexOf(order.status) >= 0;
    var note = {
      draft: "出卖人尚未生成电子合同订单。",
      awaiting_signatures: "已创建订单，待签字：买卖各方均须人脸核身后签署。",
      awaiting_submit: "订单已经完成签字，待出卖人提交；提交后合同即为「已签约」。",
      transferred: "转移登记已完成。",
    }[order.status];
    if (!note && !manage) { return ""; }
    return '<div class="card" id="resale-state">' + (note ? "<p>" + esc(note) + "</p>" : "") +
      (manage ? '<a class="button' + (order.status === "awaiting_submit" ? "" : " secondary") + '" id="to-manage" href="#/resale/' +
        esc(order.id) + '">' + (order.status === "awaiting_submit" ? "去提交" : "合同订单（二维码、注销）") + "</a>" : "") +
      "</div>";
  }

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
    var resale = order.kind === "resale";
    api("GET", "/api/v1/cancellations").then(function (answer) {
      var box = document.getElementById("cancellations");
      if (!box) { return; }
      var mine = (answer.items || []).filter(function (c) { return c.order_id === order.id; });
      box.innerHTML = "<h2>" + (resale ? "合同注销" : "退房") + "</h2>" + (mine.length ? '<ul class="list">' + mine.map(function (c) {
        return '<li><a href="#/cancellation/' + esc(c.id) + '">注销申请 · ' + esc(cancelStatus(c.status, resale)) +
          '</a><br><span class="hint">' + esc(c.reason) + "</span></li>";
      }).join("") + "</ul>" : "") +
        (CANCELLABLE.indexOf(order.status) >= 0
          ? '<a class="button secondary" id="to-cancel" href="#/cancel/' + esc(order.id) + '">' +
            (resale ? "申请注销网签合同" : "申请退房") + "</a>" : "");
    }, function (e) { showError("cancellations", e); });
  }

  /* The whole contract as it is signed: every chapter and clause of the document's text. */
  // The clauses a buyer looks for first, found by the words of their chapter headings.
  var KEY_CLAUSES = [
    ["价款", /价款|价格|付款/], ["付款方式", /付款|支付|贷款/], ["交付", /交付|交接/],
    ["违约责任", /违约/], ["面积差异", /面积/],
  ];
  function contractText(text) {
    if (!text || !text.chapters) { return ""; }
    var keys = KEY_CLAUSES.map(function (key) {
      var at = -1;
      text.chapters.some(function (chapter, i) {
        if (key[1].test(chapter.heading)) { at = i; return true; }
        return false;
      });
      if (at < 0) {
        text.chapters.some(function (chapter, i) {
          if (chapter.clauses.some(function (c) { return key[1].test(c); })) { at = i; return true; }
          return false;
        });
      }
      return at < 0 ? "" : '<button type="button" data-chapter="' + at + '">' + esc(key[0]) + "</button>";
    }).join("");
    return '<div class="card contract-text" id="contract-text"><h2>合同全文</h2>' +
      '<p class="hint">请完整阅读以下条款；您签署的正是这份文本。</p>' +
      (keys ? '<p class="hint">重点条款</p><div class="toc key" id="key-clauses">' + keys + "</div>" : "") +
      '<details class="agreement" id="contract-index"><summary>目录（共 ' + text.chapters.length + " 章）</summary>" +
      '<div class="toc">' + text.chapters.map(function (chapter, i) {
        return '<button type="button" data-chapter="' + i + '">' + esc(chapter.heading) + "</button>";
      }).join("") + "</div></details>" +
      '<h3 class="doc-title">' + esc(text.title) + "</h3>" +
      text.chapters.map(function (chapter, i) {
        return '<section class="chapter" id="chapter-' + i + '"><h4>' + esc(chapter.heading) + "</h4>" +
          chapter.clauses.map(function (clause) { return "<p>" + esc(clause) + "</p>"; }).join("") +
          "</section>";
      }).join("") + '<p class="hint" id="text-end">— 合同正文完 —</p></div>';
  }

  /* The index and the key clauses scroll to their chapter (hash routing keeps anchors). */
  function contractIndex() {
    Array.prototype.forEach.call(document.querySelectorAll("#contract-text [data-chapter]"), function (button) {
      button.addEventListener("click", function () {
        var target = document.getElementById("chapter-" + button.getAttribute("data-chapter"));
        if (target) { target.scrollIntoView({ block: "start" }); }
      });
    });
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

  var STAFF_ROLE = { company_admin: "企业管理员", sales_agent: "销售人员", seal_keeper: "印章授权人", regulator: "主管部门" };

  // What a buyer's timeline leaves out: the platform's own workings (codes sent, reminders,
  // refused scans, the PDF's making), not steps of the business.
  var INTERNAL_EVENTS = {
    sign_code_sent: true, seal_code_sent: true, cancellation_code_sent: true,
    cancellation_seal_code_sent: true, seal_reminded: true, scan_refused: true,
    pdf_finished: true, password_shown: true, draft: true,
  };
  /* Who acted, by role: 销售人员 王**, 买受人 张*, 系统. */
  function actorByRole(ev, order) {
    var actor = String(ev.actor || "");
    if (!actor) { return ""; }
    var at = actor.indexOf(":");
    if (at > 0 && STAFF_ROLE[actor.slice(0, at)]) { return STAFF_ROLE[actor.slice(0, at)] + " " + actor.slice(at + 1); }
    if (actor === "系统" || actor === "平台") { return actor; }
    var role = (ev.detail || {}).role;
    if (!ROLE[role]) {
      var party = (order.parties || []).filter(function (p) {
        return p.name === actor || (p.name && p.name.charAt(0) === actor.charAt(0) && actor.indexOf("*") > 0);
      })[0];
      role = party ? party.role : "";
    }
    return (ROLE[role] || "签约方") + " " + actor;
  }
  var timelines = {};
  function loadTimeline(order) {
    var resale = order.kind === "resale";
    timelines[order.id] = { order: order, events: null, payments: [] };
    api("GET", "/api/v1/contracts/" + encodeURIComponent(order.id) + "/events").then(function (answer) {
      timelines[order.id].events = (answer.events || []).filter(function (ev) { return !INTERNAL_EVENTS[ev.type]; })
        .map(function (ev) {
          return { at: ev.at, what: eventLabel(ev, resale), who: actorByRole(ev, order), type: ev.type };
        });
      drawTimeline(order.id);
    }, function (e) { showError("timeline", e); });
  }
  /* 业务进度: a vertical stepper, oldest first, the payments the bank reported among them;
   * a step repeated by the same person (the text opened twice) is shown once. */
  function drawTimeline(orderId) {
    var state = timelines[orderId];
    var box = document.getElementById("timeline");
    if (!box || !state || !state.events) { return; }
    var steps = state.events.concat(state.payments).sort(function (a, b) { return a.at < b.at ? -1 : a.at > b.at ? 1 : 0; });
    var seen = {};
    steps = steps.filter(function (step) {
      var key = step.what + "|" + step.who;
      if (step.type && (step.type === "document_opened" || step.type === "scanned")) {
        if (seen[key]) { return false; }
        seen[key] = true;
      }
      return true;
    });
    box.innerHTML = '<ol class="stepper" id="stepper">' + steps.map(function (step) {
      return '<li class="' + (step.money ? "money" : "") + '"><span class="what">' + esc(step.what) + "</span>" +
        '<span class="meta">' + esc(when(step.at)) + (step.who ? " · " + esc(step.who) : "") + "</span></li>";
    }).join("") + "</ol>";
  }

  /* 缴款通知: drawn now and again by itself while money is still due (every few seconds,
   * and when the page is shown again), so a payment on the bank's page shows up here as
   * 已缴清 without a reload; a paid notice gives its receipt (缴款凭证). */
  function watchNotices(order) {
    var asked = generation;
    var last = "";
    var timer = null;
    function poll() {
      if (asked !== generation) { return; }
      clearTimeout(timer);
      // A page nobody looks at asks nothing; it asks again as soon as it is shown.
      if (document.visibilityState === "hidden") { return; }
      request("GET", "/api/v1/contracts/" + encodeURIComponent(order.id) + "/payment-notices").then(function (answer) {
        if (asked !== generation) { return; }
        var text = JSON.stringify(answer);
        if (text !== last) { last = text; drawNotices(order, answer); }
        var open = (answer.items || []).some(function (n) { return !n.closed && n.status !== "cancelled"; });
        clearTimeout(timer);
        if (open) { timer = setTimeout(poll, 2500); }
      }, function (e) {
        if (asked !== generation) { return; }
        var box = document.getElementById("notices");
        if (box && e.status === 404) { box.innerHTML = '<h2>缴款通知</h2><p class="hint">暂无缴款通知。</p>'; return; }
        showError("notices", e);
      });
    }
    function again() { if (document.visibilityState !== "hidden") { poll(); } }
    window.addEventListener("focus", again);
    document.addEventListener("visibilitychange", again);
    window.addEventListener("hashchange", function stop() {
      clearTimeout(timer);
      window.removeEventListener("focus", again);
      document.removeEventListener("visibilitychange", again);
      window.removeEventListener("hashchange", stop);
    });
    poll();
  }

  function drawNotices(order, answer) {
    var box = document.getElementById("notices");
    if (!box) { return; }
    var items = answer.items || [];
    var back = "/miniapp/#/contract/" + order.id;
    var refund = answer.refunded_fen || answer.refunding_fen ? '<p id="refund">' +
      (answer.refunded_fen ? "已退回 <b>" + esc(yuan(answer.refunded_fen)) + "</b>" : "") +
      (answer.refunded_fen && answer.refunding_fen ? "，" : "") +
      (answer.refunding_fen ? "退款办理中 <b>" + esc(yuan(answer.refunding_fen)) + "</b>" : "") +
      '</p><p class="hint">退款由监管银行原路退回付款账户。</p>' : "";
    box.innerHTML = "<h2>缴款通知</h2>" + refund + (items.length ? '<ul class="list">' + items.map(function (n) {
      var open = !(n.closed || n.status === "cancelled");
      return '<li data-notice="' + esc(n.kind) + '"><b>' + esc(NOTICE_KIND[n.kind] || "款项") + "</b> " +
        '<span class="status ' + (n.closed ? "signed" : "awaiting_seal") + '">' +
        esc(NOTICE_STATUS[n.status] || "办理中") + "</span>" +
        "<dl><dt>应缴</dt><dd>" + esc(yuan(n.due_fen)) + "</dd><dt>已缴</dt><dd>" + esc(yuan(n.paid_fen)) +
        "</dd>" + (n.paid_at ? '<dt>缴清时间</dt><dd class="paid-at">' + esc(when(n.paid_at)) + "</dd>" : "") +
        "<dt>缴款编号</dt><dd>" + esc(n.reference) + "</dd><dt>收款账户</dt><dd>" +
        esc(n.account_name) + " " + esc(n.account_number_masked) + "（" + esc(n.bank_name) + "）</dd></dl>" +
        (n.receipt_pdf ? '<button class="secondary receipt" data-receipt="' + esc(n.receipt_pdf) + '" data-name="缴款凭证-' +
          esc(n.reference) + '.pdf">下载缴款凭证</button><div class="receipt-msg"></div>' : "") +
        (!open ? "" : n.pay_url
          ? '<a class="button" target="_blank" rel="noopener" href="' +
            esc(sameOriginMock(n.pay_url) + "&return=" + encodeURIComponent(back)) + '">去缴款（监管银行）</a>' +
            '<p class="hint">缴款完成后，本页会自动更新缴款状态。</p>'
          : '<button class="pay secondary" data-notice="' + esc(n.id) + '">去缴款</button>' +
            '<div class="pay-box" id="pay-' + esc(n.id) + '"></div>') + "</li>";
    }).join("") + "</ul>" : '<p class="hint">暂无缴款通知。</p>');
    // The payments, in the timeline too.
    var state = timelines[order.id];
    if (state) {
      state.payments = [];
      items.forEach(function (n) {
        (n.payments || []).forEach(function (pay) {
          state.payments.push({ at: pay.at, what: "监管银行到账：" + (NOTICE_KIND[n.kind] || "款项") + " " + yuan(pay.amount_fen),
            who: "监管银行", money: true });
        });
      });
      drawTimeline(order.id);
    }
    var unpaidDeposit = items.filter(function (n) { return n.kind === "deposit" && !n.closed && n.status !== "cancelled"; });
    var toSign = document.getElementById("to-sign");
    var first = document.getElementById("deposit-first");
    if (toSign && unpaidDeposit.length && !first) {
      toSign.insertAdjacentHTML("beforebegin", '<p class="hint" id="deposit-first">请先缴清定金（实缴金额须等于应缴金额），缴清后即可签署。</p>');
    } else if (first && !unpaidDeposit.length) {
      first.remove();
    }
    Array.prototype.forEach.call(box.querySelectorAll("button.receipt"), function (button) {
      button.addEventListener("click", function () {
        var msg = button.nextElementSibling;
        busy(button, fetch(button.getAttribute("data-receipt"), { headers: { Authorization: "Bearer " + token() } })
          .then(function (r) { if (!r.ok) { throw new Error("缴款凭证暂不可用。"); } return r.blob(); }), "下载中…")
          .then(function (blob) {
            var link = document.createElement("a");
            link.href = URL.createObjectURL(blob);
            link.download = button.getAttribute("data-name");
            document.body.appendChild(link);
            link.click();
            link.remove();
            msg.innerHTML = '<p class="ok receipt-saved">已下载 ' + esc(link.download) + "</p>";
          }, function (e) { showError(msg, e); });
      });
    });
    Array.prototype.forEach.call(box.querySelectorAll("button.pay"), function (button) {
      button.addEventListener("click", function () {
        var notice = button.getAttribute("data-notice");
        var target = document.getElementById("pay-" + notice);
        fetch("/api/v1/payment-notices/" + encodeURIComponent(notice) + "/qr.png",
          { headers: { Authorization: "Bearer " + token() } })
          .then(function (r) { if (!r.ok) { throw new Error("缴款二维码暂不可用。"); } return r.blob(); })
          .then(function (blob) {
            target.innerHTML = '<img class="qr" alt="缴款二维码" src="' + URL.createObjectURL(blob) + '">' +
              '<p class="hint">请用手机银行扫描二维码，在监管银行页面完成缴款；款项只进入资金监管账户。</p>';
          }, function (e) { showError(target, e); });
      });
    });
  }

  // 数字证书服务协议: what the per-signing certificate is, and that its key is destroyed.
  var CERTIFICATE_AGREEMENT = [
    "一、每次签署时，网签平台的电子认证服务（平台 CA）为您签发一张仅用于本次签署的数字证书（事件证书），证书载明您的姓名和证件号码的摘要，有效期以签署所需为限。",
    "二、证书对应的私钥在平台的签署服务内存中生成，仅用于对本合同文本的摘要和本次签署信息（时间、验证码记录、设备信息）生成电子签名，签名完成后立即销毁，不保存、不导出、不再使用。",
    "三、签署以您通过人脸核身和短信验证码为前提；您应妥善保管手机和验证码，不得交由他人代为操作。",
    "四、电子签名、证书和可信时间戳一并保存在合同的签署证据中，任何人可凭合同编号和合同密码核验合同真伪；依照《中华人民共和国电子签名法》，可靠的电子签名与手写签名或者盖章具有同等的法律效力。",
  ];

  pages.sign = function (id) {
    var key = "wq.challenge." + id;
    render("签署合同", LOADING);
    var base = "/api/v1/contracts/" + encodeURIComponent(id);
    Promise.all([loadOrder(id), api("GET", base + "/document").then(null, function () { return {}; })]).then(function (both) {
      var order = both[0];
      var doc = both[1].document || {};
      var title = (doc.text && doc.text.title) || (doc.terms && doc.terms.title) ||
        (order.kind === "resale" ? "存量房买卖合同" : "商品房买卖合同");
      var flat = flatLabel(order.unit);
      var method = PAYMENT[order.payment_method] || "见合同约定";
      showContext("确认签署", flat);
      render("签署合同", [
        '<div class="card"><h2>短信验证签署</h2><dl>',
        '<dt>房屋</dt><dd id="sign-flat">', esc(flat), "</dd>",
        "<dt>总价款</dt><dd>", esc(yuan(order.price_fen)), "</dd>",
        "<dt>状态</dt><dd>", statusTag(order.status), "</dd></dl>",
        '<label class="check" for="agree"><input type="checkbox" id="agree"> <span>我已阅读并同意《', esc(title),
        "》《数字证书服务协议》</span></label>",
        '<div id="agree-msg"></div>',
        '<details class="agreement" id="certificate-agreement"><summary>查看《数字证书服务协议》</summary>',
        CERTIFICATE_AGREEMENT.map(function (line) { return "<p>" + esc(line) + "</p>"; }).join(""), "</details>",
        '<p class="hint">签署前须在近期（通常为 10 分钟内）通过人脸核身；超时将先引导您重新核身，完成后回到本页。</p>',
        '<button id="challenge" class="secondary">获取短信验证码</button>',
        '<div id="challenge-msg"></div>',
        '<label for="sign-code">短信验证码</label>',
        '<input id="sign-code" inputmode="numeric" maxlength="6" autocomplete="one-time-code" placeholder="6 位验证码">',
        '<div id="code-msg"></div>',
        '<button id="sign">确认签署</button><div id="sign-msg"></div></div>',
        '<div class="card"><h2>不同意签署</h2><p class="hint">如对合同内容有异议，可以拒签。拒签后本合同订单作废，需由售楼处（或出卖人）重新生成。</p>',
        '<button id="decline" class="danger">拒签</button><div id="decline-box" hidden>',
        '<label for="decline-reason">拒签原因</label>',
        '<textarea id="decline-reason" maxlength="200" rows="3" placeholder="请填写拒签原因"></textarea>',
        '<button id="decline-confirm" class="danger">确认拒签</button></div><div id="decline-msg"></div></div>',
        '<a class="button secondary" href="#/contract/', esc(order.id), '">返回合同</a>',
      ].join(""));
      on("agree", "change", function () { document.getElementById("agree-msg").innerHTML = ""; });
      on("challenge", "click", function (ev) {
        busy(ev.target, api("POST", base + "/signatures/challenge"), "发送中…")
          .then(function (c) {
            sessionStorage.setItem(key, c.challenge_id);
            document.getElementById("challenge-msg").innerHTML = '<p class="ok">验证码已发送至 ' +
              esc(c.phone_masked) + "，" + Math.round(c.expires_in / 60) + " 分钟内有效。</p>";
          }, function (e) { signingError("challenge-msg", e); });
      });
      on("sign", "click", function () {
        if (!document.getElementById("agree").checked) {
          showError("agree-msg", "请先阅读并勾选同意《" + title + "》《数字证书服务协议》。");
          return;
        }
        var challenge = sessionStorage.getItem(key);
        if (!challenge) { showError("challenge-msg", "请先获取短信验证码。"); return; }
        var code = document.getElementById("sign-code").value.trim();
        if (!/^\d{4,8}$/.test(code)) { showError("code-msg", "请输入短信中的验证码。"); return; }
        confirmSheet(order, flat, method, function (button, sheet) {
          busy(button, api("POST", base + "/signatures", { challenge_id: challenge, code: code }), "签署中…")
            .then(function () {
              sheet.remove();
              sessionStorage.removeItem(key);
              go("#/done/" + id);
            }, function (e) { sheet.remove(); signingError("sign-msg", e); });
        });
      });
      on("decline", "click", function () {
        document.getElementById("decline-box").hidden = false;
        document.getElementById("decline-reason").focus();
      });
      on("decline-confirm", "click", function (ev) {
        var reason = document.getElementById("decline-reason").value.trim();
        if (!reason) { showError("decline-msg", "请填写拒签原因。"); return; }
        busy(ev.target, api("POST", base + "/decline", { reason: reason }), "提交中…").then(function () {
          go("#/done/" + id);
        }, function (e) { showError("decline-msg", e); });
      });
    }, function (e) { showError(view, e); });
  };

  /* The last word before the code is checked: what is being signed, restated. */
  function confirmSheet(order, flat, method, onConfirm) {
    var sheet = document.createElement("div");
    sheet.className = "sheet";
    sheet.setAttribute("role", "dialog");
    sheet.setAttribute("aria-modal", "true");
    sheet.setAttribute("aria-label", "签署确认");
    sheet.innerHTML = '<div class="card"><h2>签署确认</h2><dl>' +
      '<dt>房屋</dt><dd id="confirm-flat">' + esc(flat) + "</dd>" +
      '<dt>总价款</dt><dd id="confirm-price">' + esc(yuan(order.price_fen)) + "</dd>" +
      '<dt>大写</dt><dd id="confirm-words">' + esc(String(order.price_words || "").replace(/（.*）$/, "")) + "</dd>" +
      '<dt>付款方式</dt><dd id="confirm-method">' + esc(method) + "</dd></dl>" +
      '<p class="legal" id="confirm-legal">签署后具有法律效力，请确认以上信息无误。</p>' +
      '<div class="row tight"><button id="sheet-back" class="secondary">返回修改</button>' +
      '<button id="sheet-sign">确认签署</button></div></div>';
    document.body.appendChild(sheet);
    document.getElementById("sheet-back").addEventListener("click", function () { sheet.remove(); });
    document.getElementById("sheet-sign").addEventListener("click", function (ev) { onConfirm(ev.target, sheet); });
  }

  pages.done = function (id) {
    render("签署结果", '<div class="card"><p class="hint">加载中…</p></div>');
    loadOrder(id).then(function (order) {
      var body;
      var resale = order.kind === "resale";
      var me = myParty(order);
      if (isContract(order.status)) {
        body = '<h2>签约完成</h2><p>' + statusTag(order.status) + "</p>" +
          '<p>合同编号</p><p class="big" id="contract-number">' + esc(order.contract_number) + "</p>" +
          passwordHtml(resale) + pdfButton();
      } else if (order.status === "awaiting_submit") {
        body = "<h2>您已完成签署</h2><p>" + statusTag(order.status) + "</p>" +
          "<p>订单已经完成签字，等待出卖人提交。提交后合同即为「已签约」，各方将收到合同编号和密码短信。</p>" +
          (me && me.role === "seller" ? '<a class="button" id="to-manage" href="#/resale/' + esc(order.id) + '">去提交</a>' : "");
      } else if (order.status === "awaiting_signatures" && resale && me && me.signed_at) {
        body = "<h2>您已完成签署</h2><p>" + statusTag(order.status) + "</p>" +
          "<p>等待其他签约方签署，买卖各方全部签字后由出卖人提交。</p>";
      } else if (order.status === "awaiting_seal") {
        body = "<h2>您已完成签署</h2><p>" + statusTag(order.status) + "</p>" +
          "<p>所有买受人已签署，等待开发企业盖章。盖章后您将收到合同编号和合同密码短信。</p>";
      } else if (order.status === "awaiting_signatures" && myParty(order) && myParty(order).signed_at) {
        body = "<h2>您已完成签署</h2><p>" + statusTag(order.status) + "</p>" +
          "<p>等待其他买受人签署，全部签署后由开发企业盖章。</p>";
      } else if (order.status === "voided" && me && me.declined_at) {
        body = '<h2 id="declined">您已拒签</h2><p>' + statusTag(order.status) + "</p>" +
          "<p>本合同订单已作废。如需重新签约，请联系售楼处（或出卖人）重新生成合同。</p>";
      } else {
        body = "<h2>签署状态</h2><p>" + statusTag(order.status) + "</p>";
      }
      if (isContract(order.status) || order.status === "awaiting_seal" || order.status === "awaiting_submit" ||
          (me && me.signed_at)) { showContext("签署完成", flatLabel(order.unit)); }
      var waiting = ["awaiting_seal", "awaiting_signatures", "awaiting_submit"].indexOf(order.status) >= 0;
      var subscribe = waiting && sessionStorage.getItem(WX_USER) ?
        '<div class="card"><h2>消息提醒</h2><p class="hint">' + (resale ? "合同提交签约、交易资金到账时" : "盖章完成、首付款到账时") +
        "，通过微信通知您（短信照常发送）。</p>" +
        '<button id="subscribe" class="secondary">订阅微信消息提醒</button><div id="subscribe-msg"></div></div>' : "";
      render("签署结果", subscribe + '<div class="card">' + body +
        '<button id="refresh" class="secondary">刷新状态</button>' +
        '<a class="button secondary" href="#/contract/' + esc(order.id) + '">查看合同与进度</a>' +
        '<a class="button secondary" href="#/contracts">我的合同</a></div>');
      on("refresh", "click", function () { route(); });
      on("subscribe", "click", function () { askSubscription(AFTER_SIGNING); });
      on("download-pdf", "click", function (ev) { downloadPdf(ev.target, order); });
      passwordControls(order);
    }, function (e) { showError(view, e); });
  };

  /* 合同密码: one name everywhere; what it is for; shown masked with 显示 and 复制; the
   * first look on asking, every later one after a fresh SMS code. */
  function passwordHtml(resale) {
    return '<div class="card" id="password-card"><h2>合同密码</h2>' +
      "<p>合同密码是 8 位数字，与合同编号一起用于在「合同查询」中核验合同真伪，办理后续业务时也可能用到。请妥善保管，不要告诉他人。</p>" +
      '<p class="hint">合同密码已通过短信发送给' + (resale ? "买卖各方" : "各买受人") +
      "。在本页第一次查看无需验证，之后再次查看需短信验证码。</p>" +
      '<div id="password-box"><button id="show-password" class="secondary">查看合同密码</button></div>' +
      '<div id="password-msg"></div></div>';
  }
  function passwordControls(order) {
    var path = "/api/v1/contracts/" + encodeURIComponent(order.id) + "/password";
    function shown(answer) {
      var masked = answer.password.replace(/./g, "•");
      document.getElementById("password-box").innerHTML =
        '<p class="password" id="contract-password" data-masked="true">' + masked + "</p>" +
        '<div class="row tight"><button id="password-toggle" class="secondary">显示</button>' +
        '<button id="password-copy" class="secondary">复制</button></div>';
      document.getElementById("password-msg").innerHTML = "";
      on("password-toggle", "click", function (ev) {
        var box = document.getElementById("contract-password");
        var hidden = box.getAttribute("data-masked") === "true";
        box.textContent = hidden ? answer.password : masked;
        box.setAttribute("data-masked", hidden ? "false" : "true");
        ev.target.textContent = hidden ? "隐藏" : "显示";
      });
      on("password-copy", "click", function () {
        var done = function () {
          document.getElementById("password-msg").innerHTML = '<p class="ok" id="password-copied">合同密码已复制。</p>';
        };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(answer.password).then(done, function () {
            showError("password-msg", "无法访问剪贴板，请点击「显示」后手动记下。");
          });
        } else { showError("password-msg", "无法访问剪贴板，请点击「显示」后手动记下。"); }
      });
    }
    function askCode() {
      document.getElementById("password-box").innerHTML =
        '<p class="hint" id="password-again">您已查看过合同密码。再次查看前，请验证短信验证码。</p>' +
        '<button id="password-challenge" class="secondary">获取短信验证码</button><div id="password-challenge-msg"></div>' +
        '<label for="password-code">短信验证码</label>' +
        '<input id="password-code" inputmode="numeric" maxlength="6" autocomplete="one-time-code" placeholder="6 位验证码">' +
        '<button id="password-verify">验证并查看</button>';
      var challenge = null;
      on("password-challenge", "click", function (ev) {
        busy(ev.target, api("POST", path + "/challenge"), "发送中…").then(function (c) {
          challenge = c.challenge_id;
          document.getElementById("password-challenge-msg").innerHTML = '<p class="ok">验证码已发送至 ' +
            esc(c.phone_masked) + "。</p>";
        }, function (e) { showError("password-challenge-msg", e); });
      });
      on("password-verify", "click", function (ev) {
        var code = document.getElementById("password-code").value.trim();
        if (!challenge) { showError("password-msg", "请先获取短信验证码。"); return; }
        if (!/^\d{4,8}$/.test(code)) { showError("password-msg", "请输入短信中的验证码。"); return; }
        busy(ev.target, api("POST", path, { challenge_id: challenge, code: code }), "验证中…")
          .then(shown, function (e) { showError("password-msg", e); });
      });
    }
    on("show-password", "click", function (ev) {
      busy(ev.target, api("POST", path), "查询中…").then(shown, function (e) {
        if (e.code === "password_code_required") { askCode(); return; }
        showError("password-msg", e);
      });
    });
  }

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
    render("申请注销", LOADING);
    loadOrder(orderId).then(function (order) {
      var me = myParty(order);
      var resale = order.kind === "resale";
      var heading = resale ? "申请注销网签合同" : "申请退房";
      render(heading, [
        '<div class="card"><h2>', heading, "</h2><dl>",
        "<dt>房屋</dt><dd>", unitText(order.unit), "</dd>",
        "<dt>合同编号</dt><dd>", esc(order.contract_number), "</dd></dl>",
        resale
          ? "<p>存量房合同注销线上：提交后生成注销协议，买卖各方须扫码（或在「我的签署」中打开）阅读协议，人脸核身后重新电子签名；" +
            "各方签字完成后由您提交，合同即为「已注销」。已缴入存量房交易资金监管账户的款项全部退还买受人。</p>" +
            '<p class="hint">各方签字完成前，您可以撤回注销申请。</p>'
          : "<p>退房须全体买受人重新签署《解除协议》，开发企业盖章，并经主管部门审核。审核通过后合同注销，" +
            "已缴入预售资金监管账户的款项全部原路退回。</p>",
        resale ? "" : "<fieldset><legend>申请注销人</legend>" + (order.parties || []).map(function (p) {
          return '<label class="check"><input type="checkbox" name="applicant" value="' + esc(p.id) + '"' +
            (me && p.id === me.id ? " checked" : "") + "> " + esc(p.name) + "</label>";
        }).join("") + "</fieldset>",
        '<label for="cancel-reason">', resale ? "注销原因" : "退房原因", "</label>",
        '<textarea id="cancel-reason" maxlength="200" rows="3" placeholder="请填写', resale ? "注销" : "退房", '原因"></textarea>',
        '<button id="cancel-submit">', resale ? "提交注销申请" : "提交退房申请", '</button><div id="cancel-msg"></div></div>',
        '<a class="button secondary" href="#/contract/', esc(order.id), '">返回合同</a>',
      ].join(""));
      on("cancel-submit", "click", function (ev) {
        var reason = document.getElementById("cancel-reason").value.trim();
        if (!reason) { showError("cancel-msg", resale ? "请填写注销原因。" : "请填写退房原因。"); return; }
        var body = { reason: reason };
        if (!resale) {
          body.applicants = Array.prototype.filter.call(document.querySelectorAll("input[name=applicant]"),
            function (box) { return box.checked; }).map(function (box) { return box.value; });
        }
        busy(ev.target, api("POST", "/api/v1/contracts/" + encodeURIComponent(order.id) + "/cancellation", body))
          .then(function (c) { go("#/cancellation/" + c.id); }, function (e) { showError("cancel-msg", e); });
      });
    }, function (e) { showError(view, e); });
  };

  pages.cancellation = function (id) {
    var key = "wq.cancel-challenge." + id;
    var base = "/api/v1/cancellations/" + encodeURIComponent(id);
    render("解除协议", LOADING);
    Promise.all([api("GET", base), api("GET", base + "/document")]).then(function (all) {
      var c = all[0];
      var agreement = all[1].document || {};
      var terms = agreement.terms || {};
      var ended = terms.contract || {};
      return loadOrder(c.order_id).then(function (order) {
        var resale = order.kind === "resale";
        var me = myParty(order);
        var mine = c.signers.filter(function (s) { return me && s.party_id === me.id; })[0];
        var canSign = c.status === "awaiting_signatures" && mine && !mine.signed_at;
        var waitingOthers = c.signers.some(function (s) { return !s.signed_at && (!me || s.party_id !== me.id); });
        // The API names who started it by masked name: a party whose masked name differs did
        // not (the API still decides who may withdraw or submit).
        var starter = !!c.started_by_me;
        var heading = terms.title || (resale ? "存量房买卖合同注销协议" : "解除协议");
        render(resale ? "注销协议" : "解除协议", [
          '<div class="card"><h2>', esc(heading), "</h2>",
          '<p><span class="status" data-cancel-status="', esc(c.status), '">', esc(cancelStatus(c.status, resale)), "</span></p>",
          "<dl><dt>合同编号</dt><dd>", esc(c.contract_number), "</dd>",
          ended.filing_number ? "<dt>备案号</dt><dd>" + esc(ended.filing_number) + "</dd>" : "",
          "<dt>房屋</dt><dd>", unitText(c.unit), "</dd>",
          "<dt>", resale ? "注销原因" : "解除原因", "</dt><dd>", esc(c.reason), "</dd>",
          "<dt>申请注销人</dt><dd>", esc((c.applicants || []).join("、")), "</dd>",
          "<dt>已缴监管资金</dt><dd>", esc(yuan(terms.refund_fen || 0)), "（全部退还买受人）</dd></dl></div>",
          contractText(agreement.text),
          '<div class="card"><h2>签署情况</h2><ul class="list" id="cancel-signers">',
          c.signers.map(function (s) {
            return "<li>" + esc((ROLE[s.role] || s.role) + "：") + esc(s.name) + " " +
              (s.signed_at ? '<span class="status signed">已签署 ' + esc(when(s.signed_at)) + "</span>"
                : '<span class="status">未签署</span>') + "</li>";
          }).join(""), "</ul></div>",
          c.decision_reason ? '<div class="card"><p class="error">' + esc(c.decision_reason) + "</p></div>" : "",
          c.status === "awaiting_signatures" && waitingOthers && c.scene
            ? '<div class="card" id="cancel-qr-card"><h2>请其他签约方扫码签署</h2><div id="cancel-qr"><p class="hint">二维码加载中…</p></div>' +
              '<p class="hint">其他签约方也可在「我的签署」中直接打开本协议。</p></div>' : "",
          canSign ? [
            '<div class="card"><h2>短信验证签署', resale ? "注销协议" : "解除协议", "</h2>",
            '<p class="hint">签署前须在近期（通常为 10 分钟内）通过人脸核身；超时将先引导您重新核身，完成后回到本页。</p>',
            '<button id="cancel-challenge" class="secondary">获取短信验证码</button><div id="cancel-challenge-msg"></div>',
            '<label for="cancel-code">短信验证码</label>',
            '<input id="cancel-code" inputmode="numeric" maxlength="6" autocomplete="one-time-code" placeholder="6 位验证码">',
            '<button id="cancel-sign">', resale ? "确认签署注销协议" : "确认签署解除协议", '</button><div id="cancel-sign-msg"></div></div>',
          ].join("") : "",
          resale && c.status === "awaiting_submit" ? '<div class="card" id="cancel-submit-card">' + (starter
            ? '<p>各方已完成签字。请确认无误后提交，提交后合同即为「已注销」。</p><button id="cancel-final">提交注销</button>'
            : "<p>各方已完成签字，等待发起方（" + esc(c.started_by) + "）提交。</p>") +
            '<div id="cancel-final-msg"></div></div>' : "",
          c.status === "approved" ? '<div class="card"><p class="ok" id="cancel-done">合同已注销。</p></div>' : "",
          starter && c.status === "awaiting_signatures" ? '<div class="card"><p class="hint">各方签字完成前，可以撤回注销申请，合同保持原状。</p>' +
            '<button id="cancel-withdraw" class="danger">撤回注销申请</button><div id="cancel-withdraw-msg"></div></div>' : "",
          '<a class="button secondary" href="#/contract/', esc(c.order_id), '">返回合同</a>',
        ].join(""));
        if (document.getElementById("cancel-qr")) { showQr("cancel-qr", base + "/qr.png", "注销协议签署二维码"); }
        on("cancel-challenge", "click", function (ev) {
          busy(ev.target, api("POST", base + "/signatures/challenge")).then(function (ch) {
            sessionStorage.setItem(key, ch.challenge_id);
            document.getElementById("cancel-challenge-msg").innerHTML = '<p class="ok">验证码已发送至 ' +
              esc(ch.phone_masked) + "</p>";
          }, function (e) { signingError("cancel-challenge-msg", e); });
        });
        on("cancel-sign", "click", function (ev) {
          var challenge = sessionStorage.getItem(key);
          if (!challenge) { showError("cancel-sign-msg", "请先获取短信验证码。"); return; }
          var code = document.getElementById("cancel-code").value.trim();
          if (!/^\d{4,8}$/.test(code)) { showError("cancel-sign-msg", "请输入短信中的验证码。"); return; }
          busy(ev.target, api("POST", base + "/signatures", { challenge_id: challenge, code: code })).then(function () {
            sessionStorage.removeItem(key);
            route();
          }, function (e) { signingError("cancel-sign-msg", e); });
        });
        on("cancel-final", "click", function (ev) {
          busy(ev.target, api("POST", base + "/submit")).then(function () { route(); },
            function (e) { showError("cancel-final-msg", e); });
        });
        on("cancel-withdraw", "click", function (ev) {
          busy(ev.target, api("POST", base + "/withdraw")).then(function () { route(); },
            function (e) { showError("cancel-withdraw-msg", e); });
        });
      });
    }).then(null, function (e) { showError(view, e); });
  };

  pages.contracts = function () {
    render("我的合同", '<div class="card"><p class="hint">加载中…</p></div>');
    api("GET", "/api/v1/contracts").then(function (answer) {
      var items = answer.items || [];
      render("我的合同", '<div class="card"><ul class="list" id="contract-list">' + (items.length ? items.map(function (o) {
        return '<li><a href="#/contract/' + esc(o.id) + '"><b>' + unitText(o.unit) + "</b>" +
          (o.kind === "resale" ? ' <span class="hint">存量房</span>' : "") + "<br>" + statusTag(o.status) +
          (o.contract_number ? ' <span class="hint">合同编号 ' + esc(o.contract_number) + "</span>" : "") +
          '<br><span class="hint">总价 ' + esc(yuan(o.price_fen)) + "</span></a></li>";
      }).join("") : '<li class="hint">暂无合同。扫描签约二维码，或在「我的签署」中打开待签署的合同。</li>') + "</ul></div>");
    }, function (e) { showError(view, e); });
  };

  /* 合同查询: reads only what GET /api/v1/public/verify answers (api/public/schemas.py
   * VerifyAnswer; tests/miniapp_mock/test_labels.py checks the fields read here). */
  pages.verify = function () {
    render("合同查询", [
      '<div class="card"><h2>合同真伪查询</h2>',
      '<label for="number">合同编号或备案号</label><input id="number" autocomplete="off" placeholder="合同编号或备案号">',
      '<label for="password">合同密码</label>',
      '<input id="password" inputmode="numeric" maxlength="8" autocomplete="off" placeholder="8 位合同密码">',
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
          (r.unit ? '<dt>房屋</dt><dd id="verified-flat">' + esc(flatLabel(r.unit)) + "</dd>" +
            "<dt>坐落</dt><dd>" + esc(r.unit.address) + "</dd><dt>建筑面积</dt><dd>" + esc(area(r.unit.building_area)) +
            "</dd><dt>用途</dt><dd>" + esc(r.unit.use) + "</dd>" : "") +
          (r.company ? "<dt>出卖人</dt><dd>" + esc(r.company) + "</dd>" : "") +
          (r.parties || []).map(function (party) {
            return "<dt>" + esc(ROLE[party.role] || "签约方") + "</dt><dd>" + esc(party.name) + "</dd>";
          }).join("") +
          (r.signatures || []).map(function (sig) {
            return "<dt>" + esc(ROLE[sig.role] || "签约方") + "签署</dt><dd>" + esc(sig.name) + " " +
              esc(when(sig.signed_at)) + "</dd>";
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
        '<p class="hint">凭合同编号和合同密码可查看更多信息。</p>' +
        '<a class="button secondary" href="#/verify">合同查询</a></div>');
    }, function (e) { showError(view, e); });
  };

  /* ---------------------------------------------------------------- 存量房 (resale, seed 004) */

  var RESTRICTION = {
    mortgage: "抵押", judicial_seizure: "司法查封", administrative: "行政限制", property_management: "物管用房",
  };

  function unitText(unit) { return esc(flatLabel(unit)); }

  /* Selling needs real-name and a face check (房源验证 queries by the verified identity). */
  function needFaceHtml(me) {
    var level = me.identity_level || "none";
    if (level === "face_verified") { return ""; }
    return '<div class="card" id="need-face"><p class="error" role="alert">卖房须先完成实名认证和人脸核身，' +
      "房源验证将按您的实名身份（证件号码和姓名）查询。</p>" +
      '<a class="button" id="verify-first" href="' + (level === "none" ? "#/real-name" : "#/face") + '">' +
      (level === "none" ? "去实名认证" : "去人脸核身") + "</a></div>";
  }
  function returnAfterVerifying(back) {
    on("verify-first", "click", function () { sessionStorage.setItem(RETURN, back); });
  }

  pages.sell = function () {
    render("我要卖房", LOADING);
    Promise.all([api("GET", "/api/v1/me"), api("GET", "/api/v1/contracts")]).then(function (all) {
      var me = all[0];
      var mine = (all[1].items || []).filter(function (o) {
        return o.kind === "resale" && (o.parties || []).some(function (p) {
          return p.role === "seller" && p.name === me.name;
        });
      });
      var ready = me.identity_level === "face_verified";
      render("我要卖房", [
        '<div class="card"><h2>签订买卖合同（线上）</h2><ol class="how">',
        "<li>房源验证：输入产权证书上的不动产权证号（或房产证号）和校验码</li>",
        "<li>填写买卖合同：买受人、成交价、付款方式、税费承担、资金监管</li>",
        "<li>生成电子合同订单，向买受人出示二维码</li>",
        "<li>买卖双方扫码阅读合同，人脸核身后电子签名</li>",
        "<li>订单已经完成签字后由您提交，合同即为「已签约」</li></ol>",
        '<p class="hint">房屋赠与、土地买卖等不属于存量房网签范围。合同创建后的下一个自然日内仍未完成电子签名的，系统将自动删除该合同。</p>',
        ready ? '<a class="button" id="to-title-check" href="#/title-check">开始房源验证</a>' : "",
        "</div>",
        needFaceHtml(me),
        '<div class="card"><h2>我出售的房屋</h2><ul class="list" id="sale-list">',
        mine.length ? mine.map(function (o) {
          return '<li><a href="#/resale/' + esc(o.id) + '"><b>' + unitText(o.unit) + "</b><br>" + statusTag(o.status) +
            (o.contract_number ? ' <span class="hint">合同编号 ' + esc(o.contract_number) + "</span>" : "") +
            '<br><span class="hint">成交总价 ' + esc(yuan(o.price_fen)) + "</span></a></li>";
        }).join("") : '<li class="hint">暂无。</li>',
        "</ul></div>",
      ].join(""));
      returnAfterVerifying("#/sell");
    }, function (e) { showError(view, e); });
  };

  function titleHtml(title) {
    var owners = (title.owners || []).map(function (o) {
      return "<li>" + esc(o.name) + (o.me ? ' <span class="status signed">本人</span>' : "") +
        ' <span class="hint">' + esc(o.id_number_masked) + (o.share ? " · 份额 " + esc(o.share) : "") + "</span></li>";
    }).join("");
    var others = (title.restrictions || []).map(function (r) { return RESTRICTION[r] || r; });
    return [
      '<div class="card" id="title-facts"><h2>房源信息</h2>',
      title.mortgaged
        ? '<p class="warn" id="title-mortgaged"><b>已抵押</b>：该房屋已设定抵押，仍可出售。合同将载明抵押情况，买受人签署前可见；请在办理转移登记前解除抵押。</p>'
        : '<p class="ok" id="title-not-mortgaged">未登记抵押</p>',
      "<dl><dt>不动产权证号</dt><dd>", esc(title.certificate_no), "</dd>",
      "<dt>登记日期</dt><dd>", esc(chineseDate(title.registered_on)), "</dd>",
      title.address ? "<dt>坐落</dt><dd>" + esc(title.address) + "</dd>" : "",
      "<dt>房屋</dt><dd>", unitText(title), "</dd>",
      "<dt>建筑面积</dt><dd>", esc(title.building_area), " ㎡</dd>",
      "<dt>用途</dt><dd>", esc(title.use), "</dd>",
      '<dt>权利人</dt><dd><ul class="owners" id="title-owners">', owners, "</ul></dd>",
      others.length ? "<dt>其他记载</dt><dd>" + esc(others.join("、")) + "</dd>" : "",
      "</dl>",
      title.live_order_id
        ? '<p class="hint">该房屋已有您创建的合同订单，尚未完成。</p><a class="button" href="#/resale/' +
          esc(title.live_order_id) + '">查看合同订单</a>'
        : '<a class="button" id="to-contract-form" href="#/resale-new">签订合同</a>',
      "</div>",
    ].join("");
  }

  pages["title-check"] = function () {
    render("房源验证", LOADING);
    api("GET", "/api/v1/me").then(function (me) {
      render("房源验证", [
        '<div class="card"><h2>房源验证</h2>',
        '<p class="hint">请输入产权证书上的不动产权证号（或房产证号）和校验码。权利人已与您的实名身份关联：<b>',
        esc(me.name || "未实名"), "</b>（", esc(me.id_number_masked || "-"), "），不可修改。</p>",
        '<label for="certificate-no">不动产权证号 / 房产证号</label>',
        '<input id="certificate-no" autocomplete="off" placeholder="如 粤(2020)某市不动产权第0000123号">',
        '<label for="check-code">校验码</label>',
        '<input id="check-code" autocomplete="off" maxlength="16" placeholder="产权证书上的校验码">',
        '<p class="hint">校验码每个产权证每天最多可输错 5 次。</p>',
        '<button id="title-query">查询房源</button><div id="title-msg"></div></div>',
        needFaceHtml(me),
        '<div id="title-result"></div>',
      ].join(""));
      returnAfterVerifying("#/title-check");
      on("title-query", "click", function (ev) {
        var body = {
          certificate_no: document.getElementById("certificate-no").value.trim(),
          check_code: document.getElementById("check-code").value.trim(),
        };
        var box = document.getElementById("title-msg");
        var result = document.getElementById("title-result");
        if (!body.certificate_no || !body.check_code) { showError(box, "请填写不动产权证号和校验码。"); return; }
        result.innerHTML = "";
        sessionStorage.removeItem(TITLE);
        busy(ev.target, api("POST", "/api/v1/resale/title-checks", body)).then(function (title) {
          box.innerHTML = '<p class="ok">房源验证通过，请核对房源信息。</p>';
          sessionStorage.setItem(TITLE, JSON.stringify(title));
          result.innerHTML = titleHtml(title);
        }, function (e) {
          var left = e.problem.remaining_tries;
          if (e.code === "title_check_failed" && typeof left === "number") {
            box.innerHTML = '<p class="error" role="alert" id="title-wrong">' + esc(e.message) +
              (left > 0 ? "还可尝试 " + left + " 次。" : "今日已无剩余尝试次数，请明日再试或到交易中心窗口办理。") + "</p>";
          } else if (e.code === "title_restricted") {
            box.innerHTML = '<p class="error" role="alert" id="title-restricted">' + esc(e.message) + "</p>" +
              '<p class="hint">查封或限制期间不能网签买卖合同。如有疑问，请向不动产登记部门查询或到交易中心窗口咨询。</p>';
          } else {
            showError(box, e);
          }
        });
      });
    }, function (e) { showError(view, e); });
  };

  pages["resale-new"] = function () {
    var title = null;
    try { title = JSON.parse(sessionStorage.getItem(TITLE) || "null"); } catch (e) { title = null; }
    if (!title) {
      render("填写合同", '<div class="card"><p class="error" role="alert">请先完成房源验证。</p>' +
        '<a class="button" href="#/title-check">房源验证</a></div>');
      return;
    }
    var buyers = [{}];  // what was typed, kept while buyers are added or removed
    var owners = title.owners || [];
    render("填写合同", [
      '<div class="card"><h2>存量房买卖合同</h2><dl>',
      "<dt>房屋</dt><dd>", unitText(title), "</dd>",
      "<dt>不动产权证号</dt><dd>", esc(title.certificate_no), "</dd>",
      "<dt>建筑面积</dt><dd>", esc(title.building_area), " ㎡</dd></dl>",
      title.mortgaged ? '<p class="warn">该房屋<b>已抵押</b>，合同将载明，买受人签署前可见。</p>' : "",
      '<p class="hint">带 * 的为必填项。如创建合同的下一个自然日内仍未完成电子签名，系统将自动删除该合同。</p></div>',
      '<div class="card"><h2>出卖人（甲方）</h2><p class="hint">产权证上的每位权利人都是出卖人，均须签署。</p>',
      owners.map(function (o, i) {
        return o.me
          ? '<p><b>' + esc(o.name) + '</b> <span class="status signed">本人</span><br><span class="hint">使用您绑定的手机号接收验证码</span></p>'
          : '<label for="seller-phone-' + i + '">权利人 ' + esc(o.name) + ' 的手机号码 *</label>' +
            '<input id="seller-phone-' + i + '" type="tel" inputmode="numeric" maxlength="11" autocomplete="off">';
      }).join(""),
      "</div>",
      '<div class="card"><h2>买受人（乙方）</h2><div id="buyers"></div>',
      '<button id="add-buyer" class="secondary" type="button">添加共有人（买受人）</button>',
      '<fieldset id="co-ownership" hidden><legend>共有性质 *</legend>',
      '<label class="check"><input type="radio" name="co-ownership" value="joint"> 共同共有</label>',
      '<label class="check"><input type="radio" name="co-ownership" value="by_share"> 按份共有（填写各自份额）</label>',
      "</fieldset></div>",
      '<div class="card"><h2>价款与付款</h2>',
      '<label for="price">成交总价（元）*</label>',
      '<input id="price" inputmode="decimal" autocomplete="off" placeholder="如 1860000 或 1,860,000.00">',
      '<p class="hint" id="price-preview"></p>',
      '<label for="payment-method">付款方式 *</label><select id="payment-method">', options(PAYMENT, "lump_sum"), "</select>",
      '<label for="deposit">定金（元）</label><input id="deposit" inputmode="decimal" autocomplete="off" placeholder="0">',
      '<label for="down-payment">首付款（元）</label><input id="down-payment" inputmode="decimal" autocomplete="off" placeholder="0">',
      '<label for="delivery-date">房屋交付日期 *</label><input id="delivery-date" type="date">',
      '<label for="taxes">税费承担 *</label><select id="taxes">', options(TAXES, "by_law"), "</select></div>",
      '<div class="card"><h2>资金监管信息</h2>',
      '<p class="hint">为保障买卖双方合法权益，建议选择资金监管：买受人的交易资金存入本市存量房交易资金监管账户，转移登记完成后划入出卖人收款账户。</p>',
      "<fieldset><legend>是否选择监管交易资金 *</legend>",
      '<label class="check"><input type="radio" name="supervised" value="yes" checked> 是（建议）</label>',
      '<label class="check"><input type="radio" name="supervised" value="no"> 否</label></fieldset>',
      '<div id="seller-account">',
      '<label for="bank-name">出卖人收款银行 *</label><input id="bank-name" autocomplete="off" placeholder="开户银行及支行">',
      '<label for="account-number">收款账号 *</label>',
      '<input id="account-number" inputmode="numeric" autocomplete="off" placeholder="8–30 位数字">',
      '<p class="hint">户名为出卖人（产权证上的权利人）。</p></div>',
      '<p class="warn" id="unsupervised-note" hidden>不选择资金监管时，交易资金由买卖双方自行交割，请注意资金安全。</p></div>',
      '<div class="card"><button id="resale-save">保存合同</button><div id="resale-msg"></div></div>',
    ].join(""));

    function field(name, i) {
      var el = document.getElementById("buyer-" + name + "-" + i);
      return el ? el.value : "";
    }
    function readBuyers() {
      buyers = buyers.map(function (b, i) {
        return {
          name: field("name", i), id_type: field("id-type", i) || "resident_id",
          id_number: field("id-number", i), phone: field("phone", i),
          share: document.getElementById("buyer-share-" + i) ? field("share", i) : b.share || "",
        };
      });
    }
    function coOwnership() {
      var chosen = document.querySelector("input[name=co-ownership]:checked");
      return chosen ? chosen.value : "";
    }
    function drawBuyers() {
      var byShare = buyers.length > 1 && coOwnership() === "by_share";
      document.getElementById("buyers").innerHTML = buyers.map(function (b, i) {
        var who = buyers.length > 1 ? "买受人 " + (i + 1) : "买受人";
        return '<div class="buyer"><h3>' + who + (i > 0 ? '<button type="button" class="link remove-buyer" data-index="' +
          i + '">删除</button>' : "") + "</h3>" +
          '<label for="buyer-name-' + i + '">姓名 *</label><input id="buyer-name-' + i + '" autocomplete="off" value="' + esc(b.name) + '">' +
          '<label for="buyer-id-type-' + i + '">证件类型 *</label>' + idTypeSelect("buyer-id-type-" + i, b.id_type || "resident_id") +
          '<label for="buyer-id-number-' + i + '">证件号码 *</label><input id="buyer-id-number-' + i +
          '" autocomplete="off" maxlength="20" value="' + esc(b.id_number) + '">' +
          '<label for="buyer-phone-' + i + '">手机号码 *</label><input id="buyer-phone-' + i +
          '" type="tel" inputmode="numeric" maxlength="11" autocomplete="off" value="' + esc(b.phone) + '">' +
          (byShare ? '<label for="buyer-share-' + i + '">共有份额 *</label><input id="buyer-share-' + i +
            '" autocomplete="off" placeholder="如 1/2 或 50%" value="' + esc(b.share) + '">' : "") + "</div>";
      }).join("");
      document.getElementById("co-ownership").hidden = buyers.length < 2;
      document.getElementById("add-buyer").hidden = buyers.length >= 6;
      Array.prototype.forEach.call(document.querySelectorAll(".remove-buyer"), function (button) {
        button.addEventListener("click", function () {
          readBuyers();
          buyers.splice(Number(button.getAttribute("data-index")), 1);
          drawBuyers();
        });
      });
    }
    drawBuyers();
    on("add-buyer", "click", function () { readBuyers(); buyers.push({}); drawBuyers(); });
    Array.prototype.forEach.call(document.querySelectorAll("input[name=co-ownership]"), function (radio) {
      radio.addEventListener("change", function () { readBuyers(); drawBuyers(); });
    });
    Array.prototype.forEach.call(document.querySelectorAll("input[name=supervised]"), function (radio) {
      radio.addEventListener("change", function () {
        var yes = document.querySelector("input[name=supervised]:checked").value === "yes";
        document.getElementById("seller-account").hidden = !yes;
        document.getElementById("unsupervised-note").hidden = yes;
      });
    });
    on("price", "input", function () {
      var typed = document.getElementById("price").value;
      var fen = fenFromYuan(typed);
      document.getElementById("price-preview").textContent = !typed.trim() ? ""
        : fen === null ? "金额格式不正确：请填写数字，最多两位小数。" : "成交总价：" + yuan(fen);
    });

    on("resale-save", "click", function (ev) {
      readBuyers();
      var problem = "";
      function fail(message) { if (!problem) { problem = message; } }
      var co = buyers.length > 1 ? coOwnership() : "sole";
      if (!co) { fail("买受人为多人时，请选择共有性质（共同共有或按份共有）。"); }
      var sellerPhones = owners.map(function (o, i) {
        if (o.me) { return ""; }
        var phone = document.getElementById("seller-phone-" + i).value.trim();
        if (!/^1\d{10}$/.test(phone)) { fail("请填写权利人 " + o.name + " 的手机号码（11 位数字）。"); }
        return phone;
      });
      var people = buyers.map(function (b, i) {
        var who = buyers.length > 1 ? "第 " + (i + 1) + " 位买受人" : "买受人";
        if (!b.name.trim()) { fail("请填写" + who + "的姓名。"); }
        if (!b.id_number.trim()) { fail("请填写" + who + "的证件号码。"); }
        if (!/^1\d{10}$/.test(b.phone.trim())) { fail(who + "的手机号码须为 11 位数字。"); }
        if (co === "by_share" && !b.share.trim()) { fail("请填写" + who + "的共有份额，如 1/2 或 50%。"); }
        return {
          name: b.name.trim(), id_type: b.id_type, id_number: b.id_number.trim().toUpperCase(),
          phone: b.phone.trim(), share: co === "by_share" ? b.share.trim() : "",
        };
      });
      function money(id, label, required) {
        var typed = document.getElementById(id).value;
        if (!typed.trim() && !required) { return 0; }
        var fen = fenFromYuan(typed);
        if (fen === null || (required && fen <= 0)) { fail("请填写正确的" + label + "（元，最多两位小数）。"); }
        return fen || 0;
      }
      var price = money("price", "成交总价", true);
      var deposit = money("deposit", "定金", false);
      var down = money("down-payment", "首付款", false);
      if (price && deposit + down > price) { fail("定金与首付款之和不能超过成交总价。"); }
      var delivery = document.getElementById("delivery-date").value;
      if (!delivery) { fail("请选择房屋交付日期。"); }
      var supervised = document.querySelector("input[name=supervised]:checked").value === "yes";
      var account = null;
      if (supervised) {
        account = {
          bank_name: document.getElementById("bank-name").value.trim(),
          account_number: document.getElementById("account-number").value.replace(/\s/g, ""),
        };
        if (account.bank_name.length < 2) { fail("请填写出卖人收款银行。"); }
        if (!/^\d{8,30}$/.test(account.account_number)) { fail("收款账号须为 8–30 位数字。"); }
      }
      if (problem) { showError("resale-msg", problem); return; }
      var body = {
        title_id: title.title_id, buyers: people, seller_phones: sellerPhones, price_fen: price,
        payment_method: document.getElementById("payment-method").value, delivery_date: delivery,
        taxes_borne_by: document.getElementById("taxes").value, funds_supervised: supervised,
        co_ownership: co, deposit_fen: deposit, down_payment_fen: down,
      };
      if (account) { body.seller_account = account; }
      busy(ev.target, api("POST", "/api/v1/resale/orders", body)).then(function (order) {
        sessionStorage.removeItem(TITLE);
        go("#/resale/" + order.id);
      }, function (e) { showError("resale-msg", e); });
    });
  };

  /* The seller's order (生成电子合同订单): issue it, show the QR, withdraw it before it is
   * submitted (注销电子合同订单), submit it once every party signed (提交). */
  pages.resale = function (id) {
    render("合同订单", LOADING);
    loadOrder(id).then(function (order) { drawResale(order, null); }, function (e) { showError(view, e); });
  };

  function drawResale(order, submitted) {
    var me = myParty(order);
    var r = order.resale || {};
    var st = order.status;
    var open = ["draft", "awaiting_signatures", "awaiting_submit"].indexOf(st) >= 0;
    var state = { draft: "合同已保存，尚未生成电子合同订单", awaiting_signatures: "已创建订单，待签字",
      awaiting_submit: "订单已经完成签字" }[st];
    var base = "/api/v1/contracts/" + encodeURIComponent(order.id);
    render("合同订单", [
      '<div class="card"><h2>存量房买卖合同订单</h2><p>', statusTag(st), "</p>",
      state ? '<p id="signing-state">签名状态：<b>' + esc(state) + "</b></p>" : "",
      order.contract_number ? '<p>合同编号：<b id="contract-number">' + esc(order.contract_number) + "</b></p>" : "",
      "<dl><dt>房屋</dt><dd>", unitText(order.unit), "</dd>",
      "<dt>不动产权证号</dt><dd>", esc(r.certificate_no), "</dd>",
      "<dt>成交总价</dt><dd>", esc(yuan(order.price_fen)), "</dd>",
      "<dt>资金监管</dt><dd>", r.funds_supervised ? "是" : "否", "</dd>",
      open && order.expires_at ? "<dt>签字期限</dt><dd>" + esc(when(order.expires_at)) + "</dd>" : "",
      "</dl>",
      open ? '<p class="hint">须在签字期限前完成各方电子签名，逾期系统将自动删除该合同。</p>' : "",
      "</div>",
      submitted ? '<div class="card" id="submitted"><h2>提交成功，合同已签约</h2><p>合同密码</p>' +
        '<p class="big" id="contract-password">' + esc(submitted.password) + "</p>" +
        '<p class="hint">合同密码用于核验合同真伪，请妥善保管；之后可在合同详情页凭短信验证码再次查看。合同编号和密码已通过短信发送给买卖各方，凭其可在「合同查询」中核验合同真伪；买卖双方可前往不动产登记部门办理转移登记。</p></div>' : "",
      st === "draft" ? '<div class="card"><p>请确认合同信息无误后生成电子合同订单，向买受人出示二维码。生成后合同内容不可修改。</p>' +
        '<button id="issue">生成电子合同订单</button><div id="issue-msg"></div></div>' : "",
      st === "awaiting_signatures" ? '<div class="card" id="qr-card"><h2>请买受人扫码签署</h2>' +
        '<div id="order-qr"><p class="hint">二维码加载中…</p></div>' +
        '<p class="hint">请买受人（及其他权利人）用微信扫描此二维码，阅读合同并人脸核身后签署；已实名的签约方也可在「我的签署」中直接打开。</p></div>' : "",
      '<div class="card"><h2>签字情况</h2><ul class="list">', partiesHtml(order), "</ul>",
      me && st === "awaiting_signatures" && !me.signed_at
        ? '<a class="button" id="seller-sign" href="#/contract/' + esc(order.id) + '">阅读合同并签署（出卖人）</a>' : "",
      st === "awaiting_signatures" ? '<button id="refresh" class="secondary">刷新签字状态</button>' : "",
      "</div>",
      st === "awaiting_submit" ? '<div class="card" id="submit-card"><h2>提交合同</h2>' +
        "<p>订单已经完成签字。请再次确认合同信息无误后提交，提交后合同即为「已签约」。</p>" +
        '<button id="submit-order">提交</button><div id="submit-msg"></div></div>' : "",
      isContract(st) || st === "cancelled"
        ? '<a class="button secondary" href="#/contract/' + esc(order.id) + '">查看合同与进度</a>' : "",
      st === "voided" || st === "expired" ? '<div class="card"><p id="order-ended">' +
        (st === "voided" ? "电子合同订单已注销。" : "该合同未在期限内完成签字，已被系统删除。") +
        '</p><a class="button" href="#/title-check">重新签订合同</a></div>' : "",
      open ? '<div class="card" id="void-card"><h2>注销电子合同订单</h2>' +
        '<p class="hint">在订单完成签字并提交前，如需修改合同内容或终止交易，可注销电子合同订单，再重新填写合同。</p>' +
        '<label for="void-reason">注销原因</label><input id="void-reason" autocomplete="off" placeholder="如：修改成交价格">' +
        '<button id="void-order" class="danger">注销电子合同订单</button><div id="void-msg"></div></div>' : "",
    ].join(""));
    if (submitted) { window.scrollTo(0, 0); }  // the password, shown once: in view
    if (st === "awaiting_signatures") { showQr("order-qr", base + "/qr.png", "签约二维码"); }
    on("refresh", "click", function () { route(); });
    on("issue", "click", function (ev) {
      busy(ev.target, api("POST", base + "/issue")).then(function () { route(); },
        function (e) { showError("issue-msg", e); });
    });
    on("submit-order", "click", function (ev) {
      busy(ev.target, api("POST", base + "/submit")).then(function (done) {
        drawResale(done.order, done);
      }, function (e) { showError("submit-msg", e); });
    });
    on("void-order", "click", function (ev) {
      var reason = document.getElementById("void-reason").value.trim();
      if (!reason) { showError("void-msg", "请填写注销原因。"); return; }
      busy(ev.target, api("POST", base + "/void", { reason: reason })).then(function () { route(); },
        function (e) { showError("void-msg", e); });
    });
  }

  /* 我的签署 (seed 001): what waits for my signature, found by my verified identity. */
  pages.signatures = function () {
    render("我的签署", LOADING);
    Promise.all([api("GET", "/api/v1/me"), api("GET", "/api/v1/me/signatures")]).then(function (all) {
      var me = all[0];
      var items = all[1].items || [];
      render("我的签署", [
        '<div class="card"><h2>待我签署</h2><p class="hint">按您的实名身份查找，无需扫码。</p>',
        '<ul class="list" id="signature-list">',
        items.length ? items.map(function (t) {
          var resale = t.contract_kind === "resale";
          var what = t.kind === "cancellation"
            ? (resale ? "存量房买卖合同注销协议" : "商品房买卖合同解除协议")
            : (resale ? "存量房买卖合同" : "商品房买卖合同");
          return '<li><a href="#/scan/' + esc(t.scene) + '"><b>' + esc(what) + "</b>" +
            ' <span class="status">' + esc(ROLE[t.role] || t.role) + "</span><br>" + unitText(t.unit) +
            (t.contract_number ? '<br><span class="hint">合同编号 ' + esc(t.contract_number) + "</span>" : "") +
            (t.expires_at ? '<br><span class="hint">请于 ' + esc(when(t.expires_at)) + " 前签署</span>" : "") +
            '<br><span class="todo">去签署 ›</span></a></li>';
        }).join("") : '<li class="hint">暂无待您签署的合同或注销协议。</li>',
        "</ul>",
        me.identity_level === "none" ? '<p class="hint">完成实名认证后，待您签署的合同和注销协议会按您的身份显示在这里。</p>' +
          '<a class="button" href="#/real-name">去实名认证</a>' : "",
        '<button id="refresh" class="secondary">刷新</button></div>',
      ].join(""));
      on("refresh", "click", function () { route(); });
    }, function (e) { showError(view, e); });
  };

  /* ---------------------------------------------------------------- router */

  var PUBLIC = { login: true, "phone-login": true, verify: true, scan: true, qr: true };
  // The steps of logging in and verifying: never a page to come back to.
  var STEPS = { home: true, phone: true, consent: true, "real-name": true, face: true };

  function route() {
    generation += 1;
    var parts = (location.hash.replace(/^#\/?/, "") || "home").split("/");
    var name = parts[0];
    var arg = parts.slice(1).join("/");
    var page = pages[name];
    if (!page) { name = "home"; page = pages.home; }
    if (!PUBLIC[name] && !token()) {
      // After logging in, the page that was asked for (a link to 我的签署, to 卖房).
      if (!STEPS[name] && parts[0] === name) { sessionStorage.setItem(RETURN, location.hash); }
      page = pages.login;
      name = "login";
    }
    window.scrollTo(0, 0);
    showContext(null);  // each page of the journey says which flat and which step
    Array.prototype.forEach.call(document.querySelectorAll("body > .sheet"), function (sheet) { sheet.remove(); });
    page(arg ? decodeURIComponent(arg) : "");
  }

  window.addEventListener("hashchange", route);
  refreshWho().then(null, function () { whoEl.textContent = "未登录"; });
  route();
})();

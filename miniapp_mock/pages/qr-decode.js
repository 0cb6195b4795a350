/* Reads a QR code from a photo, in the page (ISO/IEC 18004 Model 2, versions 1-40).
 *
 * Why by hand: Chromium on Linux has no BarcodeDetector, the pages load nothing from the
 * internet, and we copy no third-party code; this file is written from the standard.
 *
 *   QrDecoder.decode(rgba, width, height)
 *     -> {text, version, level: "L"|"M"|"Q"|"H", mask, corrected} or null
 *
 * `rgba` is ImageData.data. null means no code could be read; a text is only returned
 * when the format bits decode within their BCH distance and every Reed-Solomon block
 * checks, so a damaged code gives null, never a wrong text.
 *
 * The pipeline: luminance -> black/white (block thresholds that follow uneven light, then
 * a global Otsu threshold, then both inverted) -> finder patterns (1:1:3:1:1 runs, checked
 * across, down and diagonally) -> the three that form the code's corner -> the version from
 * their distance -> the bottom-right alignment pattern -> a homography from module space to
 * the image -> the module grid -> format and version information -> unmask, de-interleave,
 * Reed-Solomon correction -> the segments (numeric, alphanumeric, bytes with ECI).
 */
(function (global) {
  "use strict";

  // ---- Galois field GF(256) over x^8 + x^4 + x^3 + x^2 + 1, as the standard uses ----

  var EXP = new Uint8Array(512);
  var LOG = new Uint8Array(256);
  (function () {
    var x = 1;
    for (var i = 0; i < 255; i++) {
      EXP[i] = x;
      LOG[x] = i;
      x <<= 1;
      if (x & 0x100) x ^= 0x11d;
    }
    for (i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
  })();

  function gfMul(a, b) {
    return a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]];
  }

  function gfDiv(a, b) {
    return a === 0 ? 0 : EXP[LOG[a] + 255 - LOG[b]];
  }

  // Evaluates a polynomial whose coefficients are stored lowest power first.
  function polyEval(poly, x) {
    var y = 0;
    for (var i = poly.length - 1; i >= 0; i--) y = gfMul(y, x) ^ poly[i];
    return y;
  }

  /* Corrects one block in place (data then EC codewords, first sent first). Returns the
   * number of codewords corrected, or -1 when the block has more errors than `maxErrors`. */
  function correctBlock(block, ecCount, maxErrors) {
    var n = block.length;
    var syndromes = new Array(ecCount);
    var clean = true;
    for (var j = 0; j < ecCount; j++) {
      var s = 0;
      var root = EXP[j];
      for (var i = 0; i < n; i++) s = gfMul(s, root) ^ block[i];
      syndromes[j] = s;
      if (s !== 0) clean = false;
    }
    if (clean) return 0;

    // Berlekamp-Massey: the shortest error locator Lambda(x) generating the syndromes.
    var lambda = [1];
    var prior = [1];
    var length = 0;
    var shift = 1;
    var priorDiscrepancy = 1;
    for (var k = 0; k < ecCount; k++) {
      var d = syndromes[k];
      for (i = 1; i <= length; i++) d ^= gfMul(lambda[i] || 0, syndromes[k - i]);
      if (d === 0) {
        shift++;
        continue;
      }
      var scale = gfDiv(d, priorDiscrepancy);
      var next = lambda.slice();
      for (i = 0; i < prior.length; i++) {
        var at = i + shift;
        while (next.length <= at) next.push(0);
        next[at] ^= gfMul(scale, prior[i]);
      }
      if (2 * length <= k) {
        prior = lambda;
        length = k + 1 - length;
        priorDiscrepancy = d;
        shift = 1;
      } else {
        shift++;
      }
      lambda = next;
    }
    if (length > maxErrors) return -1;

    // Chien search: position p (power of x, 0 = last codeword) is wrong when
    // Lambda(alpha^-p) = 0.
    var positions = [];
    for (var p = 0; p < n; p++) {
      if (polyEval(lambda, EXP[(255 - p) % 255]) === 0) positions.push(p);
    }
    if (positions.length !== length) return -1;

    // Forney: Omega(x) = S(x) Lambda(x) mod x^ecCount; with the generator's roots starting
    // at alpha^0 the error value is X * Omega(X^-1) / Lambda'(X^-1).
    var omega = new Array(ecCount).fill(0);
    for (i = 0; i < ecCount; i++) {
      for (j = 0; j < lambda.length && i + j < ecCount; j++) {
        omega[i + j] ^= gfMul(syndromes[i], lambda[j]);
      }
    }
    var derivative = [];
    for (i = 1; i < lambda.length; i++) derivative.push(i % 2 === 1 ? lambda[i] : 0);
    for (i = 0; i < positions.length; i++) {
      var xInverse = EXP[(255 - positions[i]) % 255];
      var denominator = polyEval(derivative, xInverse);
      if (denominator === 0) return -1;
      var magnitude = gfMul(EXP[positions[i] % 255], gfDiv(polyEval(omega, xInverse), denominator));
      block[n - 1 - positions[i]] ^= magnitude;
    }
    // The corrected block must be a codeword; anything else means the decode went wrong.
    for (j = 0; j < ecCount; j++) {
      s = 0;
      for (i = 0; i < n; i++) s = gfMul(s, EXP[j]) ^ block[i];
      if (s !== 0) return -1;
    }
    return positions.length;
  }

  // ---- Tables from the standard ----

  var LEVELS = ["M", "L", "H", "Q"]; // indexed by the format's two error-correction bits

  /* Error-correction blocks (ISO/IEC 18004 table 9), per version, for L, M, Q, H:
   * [EC codewords per block, blocks, data codewords per block(, blocks, data codewords)]. */
  var BLOCKS = [
    [[7,1,19],[10,1,16],[13,1,13],[17,1,9]],[[10,1,34],[16,1,28],[22,1,22],[28,1,16]],
    [[15,1,55],[26,1,44],[18,2,17],[22,2,13]],[[20,1,80],[18,2,32],[26,2,24],[16,4,9]],
    [[26,1,108],[24,2,43],[18,2,15,2,16],[22,2,11,2,12]],[[18,2,68],[16,4,27],[24,4,19],[28,4,15]],
    [[20,2,78],[18,4,31],[18,2,14,4,15],[26,4,13,1,14]],
    [[24,2,97],[22,2,38,2,39],[22,4,18,2,19],[26,4,14,2,15]],
    [[30,2,116],[22,3,36,2,37],[20,4,16,4,17],[24,4,12,4,13]],
    [[18,2,68,2,69],[26,4,43,1,44],[24,6,19,2,20],[28,6,15,2,16]],
    [[20,4,81],[30,1,50,4,51],[28,4,22,4,23],[24,3,12,8,13]],
    [[24,2,92,2,93],[22,6,36,2,37],[26,4,20,6,21],[28,7,14,4,15]],
    [[26,4,107],[22,8,37,1,38],[24,8,20,4,21],[22,12,11,4,12]],
    [[30,3,115,1,116],[24,4,40,5,41],[20,11,16,5,17],[24,11,12,5,13]],
    [[22,5,87,1,88],[24,5,41,5,42],[30,5,24,7,25],[24,11,12,7,13]],
    [[24,5,98,1,99],[28,7,45,3,46],[24,15,19,2,20],[30,3,15,13,16]],
    [[28,1,107,5,108],[28,10,46,1,47],[28,1,22,15,23],[28,2,14,17,15]],
    [[30,5,120,1,121],[26,9,43,4,44],[28,17,22,1,23],[28,2,14,19,15]],
    [[28,3,113,4,114],[26,3,44,11,45],[26,17,21,4,22],[26,9,13,16,14]],
    [[28,3,107,5,108],[26,3,41,13,42],[30,15,24,5,25],[28,15,15,10,16]],
    [[28,4,116,4,117],[26,17,42],[28,17,22,6,23],[30,19,16,6,17]],
    [[28,2,111,7,112],[28,17,46],[30,7,24,16,25],[24,34,13]],
    [[30,4,121,5,122],[28,4,47,14,48],[30,11,24,14,25],[30,16,15,14,16]],
    [[30,6,117,4,118],[28,6,45,14,46],[30,11,24,16,25],[30,30,16,2,17]],
    [[26,8,106,4,107],[28,8,47,13,48],[30,7,24,22,25],[30,22,15,13,16]],
    [[28,10,114,2,115],[28,19,46,4,47],[28,28,22,6,23],[30,33,16,4,17]],
    [[30,8,122,4,123],[28,22,45,3,46],[30,8,23,26,24],[30,12,15,28,16]],
    [[30,3,117,10,118],[28,3,45,23,46],[30,4,24,31,25],[30,11,15,31,16]],
    [[30,7,116,7,117],[28,21,45,7,46],[30,1,23,37,24],[30,19,15,26,16]],
    [[30,5,115,10,116],[28,19,47,10,48],[30,15,24,25,25],[30,23,15,25,16]],
    [[30,13,115,3,116],[28,2,46,29,47],[30,42,24,1,25],[30,23,15,28,16]],
    [[30,17,115],[28,10,46,23,47],[30,10,24,35,25],[30,19,15,35,16]],
    [[30,17,115,1,116],[28,14,46,21,47],[30,29,24,19,25],[30,11,15,46,16]],
    [[30,13,115,6,116],[28,14,46,23,47],[30,44,24,7,25],[30,59,16,1,17]],
    [[30,12,121,7,122],[28,12,47,26,48],[30,39,24,14,25],[30,22,15,41,16]],
    [[30,6,121,14,122],[28,6,47,34,48],[30,46,24,10,25],[30,2,15,64,16]],
    [[30,17,122,4,123],[28,29,46,14,47],[30,49,24,10,25],[30,24,15,46,16]],
    [[30,4,122,18,123],[28,13,46,32,47],[30,48,24,14,25],[30,42,15,32,16]],
    [[30,20,117,4,118],[28,40,47,7,48],[30,43,24,22,25],[30,10,15,67,16]],
    [[30,19,118,6,119],[28,18,47,31,48],[30,34,24,34,25],[30,20,15,61,16]]
  ];
  var LEVEL_ORDER = { L: 0, M: 1, Q: 2, H: 3 };

  /* Version 1 (and 2-L, 3-L) keep some EC codewords for misdecode protection (the standard's
   * "p"), so they correct fewer errors than half their EC codewords. */
  var PROTECTED = { "1L": 3, "1M": 2, "1Q": 1, "1H": 1, "2L": 2, "3L": 1 };

  function alignmentCentres(version) {
    if (version === 1) return [];
    var count = Math.floor(version / 7) + 2;
    var last = 4 * version + 10;
    var step = version === 32 ? 26 : Math.ceil((last - 6) / (count - 1) / 2) * 2;
    var centres = [6];
    for (var i = count - 2; i >= 0; i--) centres.push(last - i * step);
    return centres;
  }

  function formatWord(data) {
    var rem = data << 10;
    for (var bit = 14; bit >= 10; bit--) if (rem & (1 << bit)) rem ^= 0x537 << (bit - 10);
    return ((data << 10) | rem) ^ 0x5412;
  }

  function versionWord(version) {
    var rem = version << 12;
    for (var bit = 17; bit >= 12; bit--) if (rem & (1 << bit)) rem ^= 0x1f25 << (bit - 12);
    return (version << 12) | rem;
  }

  var FORMAT_WORDS = [];
  for (var f = 0; f < 32; f++) FORMAT_WORDS.push(formatWord(f));
  var VERSION_WORDS = [];
  for (var v = 7; v <= 40; v++) VERSION_WORDS.push(versionWord(v));

  function bitCount(x) {
    var c = 0;
    while (x) {
      x &= x - 1;
      c++;
    }
    return c;
  }

  // The nearest valid word to what was read, if within 3 bits (both codes correct 3).
  function nearest(words, read, first) {
    var best = -1;
    var bestDistance = 4;
    for (var i = 0; i < words.length; i++) {
      for (var r = 0; r < read.length; r++) {
        var distance = bitCount(words[i] ^ read[r]);
        if (distance < bestDistance) {
          best = i + first;
          bestDistance = distance;
        }
      }
    }
    return best;
  }

  var MASKS = [
    function (i, j) { return (i + j) % 2 === 0; },
    function (i) { return i % 2 === 0; },
    function (i, j) { return j % 3 === 0; },
    function (i, j) { return (i + j) % 3 === 0; },
    function (i, j) { return (Math.floor(i / 2) + Math.floor(j / 3)) % 2 === 0; },
    function (i, j) { return ((i * j) % 2) + ((i * j) % 3) === 0; },
    function (i, j) { return (((i * j) % 2) + ((i * j) % 3)) % 2 === 0; },
    function (i, j) { return (((i + j) % 2) + ((i * j) % 3)) % 2 === 0; }
  ];

  // ---- From pixels to black and white ----

  function luminance(rgba, width, height) {
    var lum = new Uint8Array(width * height);
    for (var i = 0, p = 0; i < lum.length; i++, p += 4) {
      var a = rgba[p + 3];
      var y = (rgba[p] * 306 + rgba[p + 1] * 601 + rgba[p + 2] * 117) >> 10;
      // Transparent pixels count as paper.
      lum[i] = a === 255 ? y : (y * a + 255 * (255 - a)) / 255;
    }
    return lum;
  }

  // A 3x3 box average: sensor noise and JPEG ringing shrink threefold, modules of three
  // pixels or more survive.
  function smoothed(lum, width, height) {
    // Separable: sums of three across, then of three of those down (edges repeat).
    var across = new Uint16Array(lum.length);
    for (var y = 0; y < height; y++) {
      var row = y * width;
      for (var x = 0; x < width; x++) {
        var i = row + x;
        across[i] = lum[x > 0 ? i - 1 : i] + lum[i] + lum[x < width - 1 ? i + 1 : i];
      }
    }
    var out = new Uint8Array(lum.length);
    for (y = 0; y < height; y++) {
      var up = y > 0 ? -width : 0;
      var down = y < height - 1 ? width : 0;
      for (x = 0, i = y * width; x < width; x++, i++) {
        out[i] = (across[i + up] + across[i] + across[i + down]) / 9;
      }
    }
    return out;
  }

  function histogram(lum) {
    var hist = new Uint32Array(256);
    for (var i = 0; i < lum.length; i++) hist[lum[i]]++;
    return hist;
  }

  function percentile(hist, total, fraction) {
    var goal = total * fraction;
    var seen = 0;
    for (var i = 0; i < 256; i++) {
      seen += hist[i];
      if (seen >= goal) return i;
    }
    return 255;
  }

  function otsu(hist, total) {
    var sum = 0;
    for (var i = 0; i < 256; i++) sum += i * hist[i];
    var sumBelow = 0;
    var below = 0;
    var best = 127;
    var bestVariance = -1;
    for (i = 0; i < 256; i++) {
      below += hist[i];
      if (below === 0) continue;
      var above = total - below;
      if (above === 0) break;
      sumBelow += i * hist[i];
      var meanBelow = sumBelow / below;
      var meanAbove = (sum - sumBelow) / above;
      var variance = below * above * (meanBelow - meanAbove) * (meanBelow - meanAbove);
      if (variance > bestVariance) {
        bestVariance = variance;
        best = i;
      }
    }
    return best;
  }

  function globalThreshold(lum, hist) {
    var t = otsu(hist, lum.length);
    var bits = new Uint8Array(lum.length);
    for (var i = 0; i < lum.length; i++) bits[i] = lum[i] <= t ? 1 : 0;
    return bits;
  }

  /* Thresholds per block so that a shadow across the code does not turn it black. A block
   * with contrast takes the midpoint of its (lightly smoothed) darkest and lightest values;
   * a flat block (inside a finder's centre, or plain paper) borrows from its neighbours, so
   * flat areas keep the colour of what surrounds them instead of turning into noise. */
  function blockThreshold(lum, soft, width, height, hist, blocksAcross, level) {
    var size = Math.max(4, Math.round(Math.min(width, height) / blocksAcross));
    var bw = Math.ceil(width / size);
    var bh = Math.ceil(height / size);
    var spread = percentile(hist, lum.length, 0.95) - percentile(hist, lum.length, 0.05);
    var minContrast = Math.max(20, spread * 0.2);
    var lo = new Uint8Array(bw * bh).fill(255);
    var hi = new Uint8Array(bw * bh);
    // Contrast is measured on the smoothed picture (`soft`), so single noisy pixels do not
    // count as contrast; `lum` is what gets classified.
    for (var y = 0; y < height; y++) {
      var row = y * width;
      var by = Math.floor(y / size) * bw;
      for (var x = 0; x < width; x++) {
        var s = soft[row + x];
        var b = by + Math.floor(x / size);
        if (s < lo[b]) lo[b] = s;
        if (s > hi[b]) hi[b] = s;
      }
    }
    var own = new Float32Array(bw * bh).fill(-1);
    var known = 0;
    for (b = 0; b < own.length; b++) {
      if (hi[b] - lo[b] >= minContrast) {
        own[b] = lo[b] + (hi[b] - lo[b]) * level;
        known++;
      }
    }
    if (known === 0) return null;
    // Flat blocks take the mean of known neighbours, spreading outwards pass by pass.
    var filled = own.slice();
    var pending = own.length - known;
    while (pending > 0) {
      var nextFilled = filled.slice();
      var progress = 0;
      for (var yy = 0; yy < bh; yy++) {
        for (var xx = 0; xx < bw; xx++) {
          b = yy * bw + xx;
          if (filled[b] >= 0) continue;
          var total = 0;
          var count = 0;
          for (var dy = -1; dy <= 1; dy++) {
            for (var dx = -1; dx <= 1; dx++) {
              var nx = xx + dx;
              var ny = yy + dy;
              if (nx < 0 || ny < 0 || nx >= bw || ny >= bh) continue;
              var t = filled[ny * bw + nx];
              if (t >= 0) {
                total += t;
                count++;
              }
            }
          }
          if (count > 0) {
            nextFilled[b] = total / count;
            progress++;
          }
        }
      }
      filled = nextFilled;
      pending -= progress;
      if (progress === 0) break;
    }
    // Each block's threshold is the mean over its 5x5 neighbourhood, so it changes smoothly.
    var smooth = new Float32Array(bw * bh);
    for (yy = 0; yy < bh; yy++) {
      for (xx = 0; xx < bw; xx++) {
        total = 0;
        count = 0;
        for (dy = -2; dy <= 2; dy++) {
          for (dx = -2; dx <= 2; dx++) {
            nx = Math.min(bw - 1, Math.max(0, xx + dx));
            ny = Math.min(bh - 1, Math.max(0, yy + dy));
            total += filled[ny * bw + nx];
            count++;
          }
        }
        smooth[yy * bw + xx] = total / count;
      }
    }
    var bits = new Uint8Array(width * height);
    for (y = 0; y < height; y++) {
      row = y * width;
      by = Math.floor(y / size) * bw;
      for (x = 0; x < width; x++) {
        bits[row + x] = lum[row + x] <= smooth[by + Math.floor(x / size)] ? 1 : 0;
      }
    }
    return bits;
  }

  // ---- Finder patterns ----

  function ratioFits(runs, tolerance) {
    var total = runs[0] + runs[1] + runs[2] + runs[3] + runs[4];
    if (total < 7) return false;
    var module = total / 7;
    var slack = module * tolerance;
    return Math.abs(runs[0] - module) < slack && Math.abs(runs[1] - module) < slack &&
      Math.abs(runs[3] - module) < slack && Math.abs(runs[4] - module) < slack &&
      Math.abs(runs[2] - 3 * module) < 3 * slack;
  }

  /* Runs dark-light-DARK-light-dark along a line through (x, y), which must be dark, in
   * direction (dx, dy). Returns {runs, centre offset along the line} or null. */
  function crossRuns(image, x, y, dx, dy, limit) {
    var bits = image.bits;
    var width = image.width;
    var height = image.height;
    function dark(px, py) {
      return bits[py * width + px] === 1;
    }
    function inside(px, py) {
      return px >= 0 && py >= 0 && px < width && py < height;
    }
    var runs = [0, 0, 0, 0, 0];
    var px = x;
    var py = y;
    var back = 0;
    while (inside(px, py) && dark(px, py)) {
      back++;
      px -= dx;
      py -= dy;
      if (back > 3 * limit) return null;
    }
    while (inside(px, py) && !dark(px, py) && runs[1] <= limit) {
      runs[1]++;
      px -= dx;
      py -= dy;
    }
    if (!inside(px, py) || runs[1] > limit) return null;
    while (inside(px, py) && dark(px, py) && runs[0] <= limit) {
      runs[0]++;
      px -= dx;
      py -= dy;
    }
    if (runs[0] > limit) return null;
    px = x + dx;
    py = y + dy;
    var forward = 0;
    while (inside(px, py) && dark(px, py)) {
      forward++;
      px += dx;
      py += dy;
      if (forward > 3 * limit) return null;
    }
    while (inside(px, py) && !dark(px, py) && runs[3] <= limit) {
      runs[3]++;
      px += dx;
      py += dy;
    }
    if (!inside(px, py) || runs[3] > limit) return null;
    while (inside(px, py) && dark(px, py) && runs[4] <= limit) {
      runs[4]++;
      px += dx;
      py += dy;
    }
    if (runs[4] > limit) return null;
    runs[2] = back + forward;
    return { runs: runs, offset: (forward - back + 1) / 2 };
  }

  function total(runs) {
    return runs[0] + runs[1] + runs[2] + runs[3] + runs[4];
  }

  /* Confirms a finder centre found on a row: vertically, horizontally again, diagonally.
   * Returns {x, y, size (pixels per module)} in continuous coordinates, or null. */
  function confirmFinder(image, centreX, y, rowRuns) {
    var rowTotal = total(rowRuns);
    var limit = Math.ceil(rowTotal);
    var x = Math.floor(centreX);
    var down = crossRuns(image, x, y, 0, 1, limit);
    if (!down || !ratioFits(down.runs, 0.6)) return null;
    var downTotal = total(down.runs);
    if (downTotal > 2.5 * rowTotal || rowTotal > 2.5 * downTotal) return null;
    // Offsets are from a pixel's centre: pixel x covers [x, x + 1).
    var cy = y + 0.5 + down.offset;
    var yy = Math.floor(cy);
    var across = crossRuns(image, x, yy, 1, 0, limit);
    if (!across || !ratioFits(across.runs, 0.6)) return null;
    var cx = x + 0.5 + across.offset;
    var diagonal = crossRuns(image, Math.floor(cx), yy, 1, 1, limit);
    if (!diagonal || !ratioFits(diagonal.runs, 0.75)) return null;
    return {
      x: cx,
      y: cy,
      size: (total(across.runs) + downTotal) / 14,
      count: 1
    };
  }

  var MAX_FINDERS = 300;

  function findFinders(image) {
    var bits = image.bits;
    var width = image.width;
    var height = image.height;
    var found = [];
    var step = height > 1200 ? 2 : 1;
    for (var y = 0; y < height; y += step) {
      var row = y * width;
      var runs = [0, 0, 0, 0, 0];
      var filled = 0; // how many of the five runs are real
      var colour = bits[row];
      var length = 0;
      for (var x = 0; x <= width; x++) {
        var here = x < width ? bits[row + x] : 2;
        if (here === colour) {
          length++;
          continue;
        }
        runs.shift();
        runs.push(length);
        if (filled < 5) filled++;
        if (colour === 1 && filled === 5 && ratioFits(runs, 0.6)) {
          var centreX = x - runs[4] - runs[3] - runs[2] / 2;
          var finder = confirmFinder(image, centreX, y, runs.slice());
          if (finder) {
            merge(found, finder);
            // A sheet of look-alikes (or of many codes) is not one code to read, and
            // merging is linear in what was found: stop rather than freeze the page.
            if (found.length >= MAX_FINDERS) return found;
          }
        }
        colour = here;
        length = 1;
      }
    }
    return found;
  }

  function merge(found, finder) {
    for (var i = 0; i < found.length; i++) {
      var other = found[i];
      var near = Math.max(other.size, finder.size) * 2;
      if (Math.abs(other.x - finder.x) <= near && Math.abs(other.y - finder.y) <= near &&
          Math.abs(other.size - finder.size) <= Math.max(other.size, finder.size) * 0.5) {
        var n = other.count;
        other.x = (other.x * n + finder.x) / (n + 1);
        other.y = (other.y * n + finder.y) / (n + 1);
        other.size = (other.size * n + finder.size) / (n + 1);
        other.count = n + 1;
        return;
      }
    }
    found.push(finder);
  }

  function distance(a, b) {
    return Math.hypot(a.x - b.x, a.y - b.y);
  }

  /* Triples of finders that could be one code's corners, best first, each ordered
   * top-left (the right angle), top-right, bottom-left as the code is read. */
  function cornerTriples(finders) {
    // A finder's centre is three modules tall, so a real one is confirmed on many rows;
    // print and clutter that happen to match 1:1:3:1:1 are confirmed on a few.
    var most = 0;
    for (var f = 0; f < finders.length; f++) most = Math.max(most, finders[f].count);
    var floor = Math.max(2, most / 12);
    var pool = finders.filter(function (f) { return f.count >= floor; });
    if (pool.length < 3) pool = finders.filter(function (f) { return f.count >= 2; });
    if (pool.length < 3) pool = finders.slice();
    pool.sort(function (a, b) { return b.count - a.count; });
    pool = pool.slice(0, 20);
    var triples = [];
    for (var i = 0; i < pool.length; i++) {
      for (var j = i + 1; j < pool.length; j++) {
        for (var k = j + 1; k < pool.length; k++) {
          var triple = orderTriple(pool[i], pool[j], pool[k]);
          if (triple) triples.push(triple);
        }
      }
    }
    triples.sort(function (a, b) { return a.score - b.score; });
    return triples.slice(0, 8);
  }

  function orderTriple(a, b, c) {
    var sizes = [a.size, b.size, c.size];
    var small = Math.min.apply(null, sizes);
    var large = Math.max.apply(null, sizes);
    if (large > 3 * small) return null;
    var ab = distance(a, b);
    var bc = distance(b, c);
    var ac = distance(a, c);
    var topLeft, one, two, legA, legB, hyp;
    if (bc >= ab && bc >= ac) {
      topLeft = a; one = b; two = c; legA = ab; legB = ac; hyp = bc;
    } else if (ac >= ab) {
      topLeft = b; one = a; two = c; legA = ab; legB = bc; hyp = ac;
    } else {
      topLeft = c; one = a; two = b; legA = ac; legB = bc; hyp = ab;
    }
    var module = (a.size + b.size + c.size) / 3;
    var legRatio = Math.max(legA, legB) / Math.min(legA, legB);
    if (legRatio > 2.2) return null;
    if (Math.min(legA, legB) < 10 * module || Math.max(legA, legB) > 200 * module) return null;
    var rightAngle = Math.abs(hyp * hyp - legA * legA - legB * legB) / (hyp * hyp);
    if (rightAngle > 0.5) return null;
    // Image y grows downwards: from top-left, top-right is clockwise of bottom-left.
    var cross = (one.x - topLeft.x) * (two.y - topLeft.y) - (one.y - topLeft.y) * (two.x - topLeft.x);
    var topRight = cross > 0 ? one : two;
    var bottomLeft = cross > 0 ? two : one;
    var sizeSpread = (large - small) / small;
    return {
      topLeft: topLeft,
      topRight: topRight,
      bottomLeft: bottomLeft,
      // Perspective makes sizes and legs differ, so those weigh less than being seen often.
      score: rightAngle + (legRatio - 1) + sizeSpread / 2 - 0.1 * Math.log(Math.min(a.count, b.count, c.count))
    };
  }

  // ---- Geometry: module space to image ----

  /* The homography taking four module-space points to four image points, found by solving
   * the 8x8 linear system with partial pivoting. Returns map(u, v) -> [x, y] or null. */
  function homography(from, to) {
    var m = [];
    for (var i = 0; i < 4; i++) {
      var u = from[i][0], v = from[i][1], x = to[i][0], y = to[i][1];
      m.push([u, v, 1, 0, 0, 0, -u * x, -v * x, x]);
      m.push([0, 0, 0, u, v, 1, -u * y, -v * y, y]);
    }
    for (var col = 0; col < 8; col++) {
      var pivot = col;
      for (var r = col + 1; r < 8; r++) if (Math.abs(m[r][col]) > Math.abs(m[pivot][col])) pivot = r;
      if (Math.abs(m[pivot][col]) < 1e-12) return null;
      var swap = m[col]; m[col] = m[pivot]; m[pivot] = swap;
      for (r = 0; r < 8; r++) {
        if (r === col) continue;
        var factor = m[r][col] / m[col][col];
        if (factor === 0) continue;
        for (var c = col; c < 9; c++) m[r][c] -= factor * m[col][c];
      }
    }
    var h = [];
    for (i = 0; i < 8; i++) h.push(m[i][8] / m[i][i]);
    return function (u, v) {
      var w = h[6] * u + h[7] * v + 1;
      return [(h[0] * u + h[1] * v + h[2]) / w, (h[3] * u + h[4] * v + h[5]) / w];
    };
  }

  function affine(corners, dimension) {
    var span = dimension - 7;
    var tl = corners.topLeft, tr = corners.topRight, bl = corners.bottomLeft;
    return function (u, v) {
      var a = (u - 3.5) / span;
      var b = (v - 3.5) / span;
      return [tl.x + a * (tr.x - tl.x) + b * (bl.x - tl.x), tl.y + a * (tr.y - tl.y) + b * (bl.y - tl.y)];
    };
  }

  /* The bottom-right alignment pattern near where the three finders predict it: a dark
   * module in a light ring in a dark ring, checked across and down, then scored as a 5x5
   * template with the local module vectors. Returns its centre or null. */
  function findAlignment(image, guess, dimension) {
    var centre = dimension - 6.5;
    var predicted = guess(centre, centre);
    var one = guess(centre + 1, centre);
    var down = guess(centre, centre + 1);
    var ex = [one[0] - predicted[0], one[1] - predicted[1]];
    var ey = [down[0] - predicted[0], down[1] - predicted[1]];
    var module = (Math.hypot(ex[0], ex[1]) + Math.hypot(ey[0], ey[1])) / 2;
    var radius = Math.max(4, dimension * 0.15) * module;
    var x0 = Math.max(0, Math.floor(predicted[0] - radius));
    var x1 = Math.min(image.width - 1, Math.ceil(predicted[0] + radius));
    var y0 = Math.max(0, Math.floor(predicted[1] - radius));
    var y1 = Math.min(image.height - 1, Math.ceil(predicted[1] + radius));
    var bits = image.bits;
    var width = image.width;
    var best = null;
    var limit = Math.ceil(module * 3);
    for (var y = y0; y <= y1; y++) {
      var row = y * width;
      for (var x = x0; x <= x1; x++) {
        if (bits[row + x] !== 1 || (x > 0 && bits[row + x - 1] === 1)) continue;
        var across = innerRing(image, x, y, 1, 0, limit);
        if (!across) continue;
        var cx = x + 0.5 + across.offset;
        var vertical = innerRing(image, Math.floor(cx), y, 0, 1, limit);
        if (!vertical) continue;
        var cy = y + vertical.offset + 0.5;
        var local = (across.size + vertical.size) / 2;
        if (local < module * 0.4 || local > module * 2.5) continue;
        var scale = local / module;
        var score = templateScore(image, cx, cy, [ex[0] * scale, ex[1] * scale], [ey[0] * scale, ey[1] * scale]);
        if (score < 21) continue;
        var miss = Math.hypot(cx - predicted[0], cy - predicted[1]) / module;
        var rank = score * 2 - miss * 0.5;
        if (!best || rank > best.rank) best = { x: cx, y: cy, rank: rank };
      }
    }
    return best;
  }

  // Light-dark-light with equal runs around (x, y), the dark run starting at (x, y).
  function innerRing(image, x, y, dx, dy, limit) {
    var bits = image.bits, width = image.width, height = image.height;
    function at(px, py) {
      if (px < 0 || py < 0 || px >= width || py >= height) return -1;
      return bits[py * width + px];
    }
    var back = 0;
    var px = x, py = y;
    while (at(px, py) === 1 && back <= limit) { back++; px -= dx; py -= dy; }
    var before = 0;
    while (at(px, py) === 0 && before <= limit) { before++; px -= dx; py -= dy; }
    if (at(px, py) !== 1) return null;
    var forward = 0;
    px = x + dx; py = y + dy;
    while (at(px, py) === 1 && forward <= limit) { forward++; px += dx; py += dy; }
    var after = 0;
    while (at(px, py) === 0 && after <= limit) { after++; px += dx; py += dy; }
    if (at(px, py) !== 1) return null;
    var middle = back + forward;
    var size = (before + middle + after) / 3;
    var slack = size * 0.6;
    if (Math.abs(before - size) > slack || Math.abs(middle - size) > slack ||
        Math.abs(after - size) > slack) return null;
    return { offset: (forward - back + 1) / 2, size: size };
  }

  function templateScore(image, cx, cy, ex, ey) {
    var score = 0;
    for (var j = -2; j <= 2; j++) {
      for (var i = -2; i <= 2; i++) {
        var x = Math.floor(cx + i * ex[0] + j * ey[0]);
        var y = Math.floor(cy + i * ex[1] + j * ey[1]);
        if (x < 0 || y < 0 || x >= image.width || y >= image.height) continue;
        var want = Math.max(Math.abs(i), Math.abs(j)) === 1 ? 0 : 1;
        if (image.bits[y * image.width + x] === want) score++;
      }
    }
    return score;
  }

  /* Samples every module: the majority of five points around its centre, so one noisy
   * pixel does not flip a module. */
  function sampleGrid(image, map, dimension) {
    var grid = new Uint8Array(dimension * dimension);
    var outside = 0;
    var offsets = [[0.5, 0.5], [0.3, 0.5], [0.7, 0.5], [0.5, 0.3], [0.5, 0.7]];
    for (var row = 0; row < dimension; row++) {
      for (var col = 0; col < dimension; col++) {
        var votes = 0;
        for (var k = 0; k < offsets.length; k++) {
          var p = map(col + offsets[k][0], row + offsets[k][1]);
          var x = isFinite(p[0]) ? Math.floor(p[0]) : -1;
          var y = isFinite(p[1]) ? Math.floor(p[1]) : -1;
          if (x < 0 || y < 0 || x >= image.width || y >= image.height) {
            if (k === 0) outside++;
            continue;
          }
          votes += image.modules[y * image.width + x];
        }
        grid[row * dimension + col] = votes >= 3 ? 1 : 0;
      }
    }
    if (outside > dimension * dimension * 0.02) return null;
    return grid;
  }

  // ---- Reading the symbol ----

  function readFormat(grid, n) {
    function at(r, c) { return grid[r * n + c]; }
    var first = 0;
    var second = 0;
    for (var i = 0; i < 15; i++) {
      var a, b;
      if (i < 6) a = at(i, 8);
      else if (i === 6) a = at(7, 8);
      else if (i === 7) a = at(8, 8);
      else if (i === 8) a = at(8, 7);
      else a = at(8, 14 - i);
      if (i < 8) b = at(8, n - 1 - i);
      else b = at(n - 15 + i, 8);
      first |= a << i;
      second |= b << i;
    }
    var data = nearest(FORMAT_WORDS, [first, second], 0);
    if (data < 0) return null;
    return { level: LEVELS[data >> 3], mask: data & 7 };
  }

  function readVersion(grid, n) {
    var topRight = 0;
    var bottomLeft = 0;
    for (var i = 0; i < 18; i++) {
      var r = Math.floor(i / 3);
      var c = n - 11 + (i % 3);
      topRight |= grid[r * n + c] << i;
      bottomLeft |= grid[c * n + r] << i;
    }
    var version = nearest(VERSION_WORDS, [topRight, bottomLeft], 7);
    return version;
  }

  function functionModules(version) {
    var n = 17 + 4 * version;
    var taken = new Uint8Array(n * n);
    function fill(r0, c0, rows, cols) {
      for (var r = r0; r < r0 + rows; r++) {
        for (var c = c0; c < c0 + cols; c++) {
          if (r >= 0 && c >= 0 && r < n && c < n) taken[r * n + c] = 1;
        }
      }
    }
    fill(0, 0, 9, 9);
    fill(0, n - 8, 9, 8);
    fill(n - 8, 0, 8, 9);
    fill(6, 0, 1, n);
    fill(0, 6, n, 1);
    var centres = alignmentCentres(version);
    var last = centres[centres.length - 1];
    for (var i = 0; i < centres.length; i++) {
      for (var j = 0; j < centres.length; j++) {
        var r = centres[i], c = centres[j];
        if ((r === 6 && c === 6) || (r === 6 && c === last) || (r === last && c === 6)) continue;
        fill(r - 2, c - 2, 5, 5);
      }
    }
    if (version >= 7) {
      fill(0, n - 11, 6, 3);
      fill(n - 11, 0, 3, 6);
    }
    return taken;
  }

  function readCodewords(grid, version, mask) {
    var n = 17 + 4 * version;
    var taken = functionModules(version);
    var isMasked = MASKS[mask];
    var codewords = [];
    var current = 0;
    var bits = 0;
    var upward = true;
    for (var right = n - 1; right > 0; right -= 2) {
      if (right === 6) right = 5;
      for (var step = 0; step < n; step++) {
        var r = upward ? n - 1 - step : step;
        for (var k = 0; k < 2; k++) {
          var c = right - k;
          if (taken[r * n + c]) continue;
          var bit = grid[r * n + c] ^ (isMasked(r, c) ? 1 : 0);
          current = (current << 1) | bit;
          if (++bits === 8) {
            codewords.push(current);
            current = 0;
            bits = 0;
          }
        }
      }
      upward = !upward;
    }
    return codewords;
  }

  /* Splits the interleaved codewords into blocks, corrects each, and returns the data
   * codewords in order with the number corrected, or null. */
  function correctedData(codewords, version, level) {
    var spec = BLOCKS[version - 1][LEVEL_ORDER[level]];
    var ecCount = spec[0];
    var blocks = [];
    for (var g = 1; g < spec.length; g += 2) {
      for (var b = 0; b < spec[g]; b++) blocks.push({ data: spec[g + 1], codewords: [] });
    }
    var expected = 0;
    for (b = 0; b < blocks.length; b++) expected += blocks[b].data + ecCount;
    if (codewords.length < expected) return null;
    var longest = blocks[blocks.length - 1].data;
    var index = 0;
    for (var i = 0; i < longest; i++) {
      for (b = 0; b < blocks.length; b++) {
        if (i < blocks[b].data) blocks[b].codewords.push(codewords[index++]);
      }
    }
    for (i = 0; i < ecCount; i++) {
      for (b = 0; b < blocks.length; b++) blocks[b].codewords.push(codewords[index++]);
    }
    var limit = Math.floor((ecCount - (PROTECTED[version + level] || 0)) / 2);
    var data = [];
    var corrected = 0;
    for (b = 0; b < blocks.length; b++) {
      var fixed = correctBlock(blocks[b].codewords, ecCount, limit);
      if (fixed < 0) return null;
      corrected += fixed;
      for (i = 0; i < blocks[b].data; i++) data.push(blocks[b].codewords[i]);
    }
    return { data: data, corrected: corrected };
  }

  // ---- Segments ----

  var ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
  var ECI_CHARSETS = { 1: "iso-8859-1", 3: "iso-8859-1", 4: "iso-8859-2", 20: "shift_jis",
    26: "utf-8", 29: "gb18030", 30: "euc-kr" };

  // Byte for code point. Not TextDecoder("iso-8859-1"): the Encoding standard maps that
  // label to windows-1252, which turns 0x80-0x9F into other characters.
  function latin1(array) {
    var text = "";
    for (var i = 0; i < array.length; i++) text += String.fromCharCode(array[i]);
    return text;
  }

  function decodeBytes(bytes, charset) {
    if (bytes.length === 0) return "";
    var array = new Uint8Array(bytes);
    if (charset === "iso-8859-1") return latin1(array);
    if (charset) return new TextDecoder(charset, { fatal: true }).decode(array);
    // Without an ECI the standard says ISO-8859-1, but phones and generators write UTF-8;
    // valid UTF-8 is taken as UTF-8.
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(array);
    } catch (notUtf8) {
      return latin1(array);
    }
  }

  function parseSegments(data, version) {
    var position = 0;
    var available = data.length * 8;
    function read(count) {
      if (position + count > available) throw new Error("past the end");
      var value = 0;
      for (var i = 0; i < count; i++, position++) {
        value = (value << 1) | ((data[position >> 3] >> (7 - (position & 7))) & 1);
      }
      return value;
    }
    var group = version <= 9 ? 0 : version <= 26 ? 1 : 2;
    var text = "";
    var bytes = [];
    var charset = null;
    var gs1 = false;
    function flush() {
      text += decodeBytes(bytes, charset);
      bytes = [];
    }
    while (available - position >= 4) {
      var mode = read(4);
      if (mode === 0) break;
      var count, value;
      if (mode === 1) {
        flush();
        count = read([10, 12, 14][group]);
        while (count >= 3) {
          value = read(10);
          if (value > 999) return null;
          text += String(value).padStart(3, "0");
          count -= 3;
        }
        if (count === 2) {
          value = read(7);
          if (value > 99) return null;
          text += String(value).padStart(2, "0");
        } else if (count === 1) {
          value = read(4);
          if (value > 9) return null;
          text += String(value);
        }
      } else if (mode === 2) {
        flush();
        count = read([9, 11, 13][group]);
        var chars = "";
        while (count >= 2) {
          value = read(11);
          if (value >= 45 * 45) return null;
          chars += ALPHANUMERIC[Math.floor(value / 45)] + ALPHANUMERIC[value % 45];
          count -= 2;
        }
        if (count === 1) {
          value = read(6);
          if (value >= 45) return null;
          chars += ALPHANUMERIC[value];
        }
        text += gs1 ? chars.replace(/%%|%/g, function (m) { return m === "%%" ? "%" : "\u001d"; }) : chars;
      } else if (mode === 4) {
        count = read([8, 16, 16][group]);
        for (var i = 0; i < count; i++) bytes.push(read(8));
      } else if (mode === 7) {
        flush();
        var first = read(8);
        if ((first & 0x80) === 0) value = first;
        else if ((first & 0xc0) === 0x80) value = ((first & 0x3f) << 8) | read(8);
        else if ((first & 0xe0) === 0xc0) value = ((first & 0x1f) << 16) | read(16);
        else return null;
        charset = ECI_CHARSETS[value];
        if (!charset) return null;
      } else if (mode === 3) {
        read(4); // this symbol's position in the sequence
        var symbols = read(4) + 1;
        read(8); // parity of the whole message
        // One symbol of several holds part of a message, which read alone would be wrong.
        if (symbols > 1) return null;
      } else if (mode === 5 || mode === 9) {
        // FNC1: GS1 (first position) or an industry's format (second, with its indicator).
        // Their alphanumeric "%" stands for the GS separator and "%%" for "%".
        if (mode === 9) read(8);
        gs1 = true;
      } else {
        return null; // kanji and hanzi modes are not written by any code we print
      }
    }
    flush();
    return text;
  }

  // ---- Putting it together ----

  /* The width of a finder pattern (seven modules) along the unit direction (ux, uy), from
   * its centre out to where the outer dark ring ends on both sides. Runs found by the row
   * scan are stretched by 1/cos of the code's rotation; along the line to another finder
   * they are not. Returns NaN when the walk leaves the image or runs too far. */
  function widthAlong(image, finder, ux, uy) {
    var reach = finder.size * 12;
    var sides = 0;
    for (var sign = -1; sign <= 1; sign += 2) {
      var changes = 0;
      var colour = 1;
      var t = 0;
      while (changes < 3) {
        t += 0.5;
        if (t > reach) return NaN;
        var x = Math.floor(finder.x + sign * ux * t);
        var y = Math.floor(finder.y + sign * uy * t);
        if (x < 0 || y < 0 || x >= image.width || y >= image.height) return NaN;
        var here = image.bits[y * image.width + x];
        if (here !== colour) {
          colour = here;
          changes++;
        }
      }
      sides += t;
    }
    return sides;
  }

  /* Local module sizes (pixels) at both ends of the line between two finders, measured
   * along that line. Under perspective they differ, and their ratio tells how fast the
   * code recedes. */
  function modulesAlong(image, from, to) {
    var length = distance(from, to);
    var ux = (to.x - from.x) / length;
    var uy = (to.y - from.y) / length;
    var near = widthAlong(image, from, ux, uy) / 7;
    var far = widthAlong(image, to, ux, uy) / 7;
    if (!isFinite(near)) near = from.size;
    if (!isFinite(far)) far = to.size;
    return { near: near, far: far, length: length, ux: ux, uy: uy };
  }

  /* Versions worth trying, nearest to the finders' spacing first. Along a receding line
   * the module count between two points is the distance over the geometric mean of the
   * module sizes at both ends (a property of a 1-D projective map). */
  function versionsNear(image, corners) {
    var tl = corners.topLeft;
    corners.across = modulesAlong(image, tl, corners.topRight);
    corners.down = modulesAlong(image, tl, corners.bottomLeft);
    var a = corners.across;
    var d = corners.down;
    var estimate = (a.length / Math.sqrt(a.near * a.far) + d.length / Math.sqrt(d.near * d.far)) / 2 + 7;
    var versions = [];
    var centre = Math.round((estimate - 17) / 4);
    for (var v = centre - 1; v <= centre + 1; v++) {
      if (v >= 1 && v <= 40) versions.push(v);
    }
    versions.sort(function (x, y) {
      return Math.abs(17 + 4 * x - estimate) - Math.abs(17 + 4 * y - estimate);
    });
    return versions;
  }

  function cross3(p, q) {
    return [p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0]];
  }

  /* Where the line's points at infinity land: x(t) = origin + dir * alpha t / (1 + gamma t)
   * with t in modules from the origin's centre; the module sizes at both ends fix gamma. In
   * homogeneous coordinates, so a line without perspective gives a direction. */
  function vanishingPoint(origin, line, span) {
    var k = Math.sqrt(line.near / line.far);
    var gamma = (k - 1) / span;
    var alpha = line.length * k / span;
    return [origin.x * gamma + alpha * line.ux, origin.y * gamma + alpha * line.uy, gamma];
  }

  /* A homography from the three finders alone: the fourth corner (the bottom-right finder
   * a code does not have) is where the line from top-right towards the columns' vanishing
   * point meets the line from bottom-left towards the rows' one. */
  function cornerMap(corners, n) {
    var span = n - 7;
    var tl = corners.topLeft, tr = corners.topRight, bl = corners.bottomLeft;
    var rows = vanishingPoint(tl, corners.across, span);
    var columns = vanishingPoint(tl, corners.down, span);
    var right = cross3([tr.x, tr.y, 1], columns);
    var bottom = cross3([bl.x, bl.y, 1], rows);
    var corner = cross3(right, bottom);
    if (Math.abs(corner[2]) < 1e-9) return null;
    var br = [corner[0] / corner[2], corner[1] / corner[2]];
    var guess = affine(corners, n)(n - 3.5, n - 3.5);
    // A corner far from the parallelogram's means the sizes were misread; do not trust it.
    if (Math.hypot(br[0] - guess[0], br[1] - guess[1]) > 0.5 * Math.max(corners.across.length, corners.down.length)) {
      return null;
    }
    return homography(
      [[3.5, 3.5], [n - 3.5, 3.5], [3.5, n - 3.5], [n - 3.5, n - 3.5]],
      [[tl.x, tl.y], [tr.x, tr.y], [bl.x, bl.y], br]
    );
  }

  function readAt(image, corners, version, tried) {
    if (tried[version]) return null;
    tried[version] = true;
    var n = 17 + 4 * version;
    var guess = cornerMap(corners, n) || affine(corners, n);
    var maps = [guess];
    if (version >= 2) {
      var alignment = findAlignment(image, guess, n);
      if (alignment) {
        var map = homography(
          [[3.5, 3.5], [n - 3.5, 3.5], [3.5, n - 3.5], [n - 6.5, n - 6.5]],
          [[corners.topLeft.x, corners.topLeft.y], [corners.topRight.x, corners.topRight.y],
            [corners.bottomLeft.x, corners.bottomLeft.y], [alignment.x, alignment.y]]
        );
        if (map) maps.unshift(map);
      }
    }
    for (var m = 0; m < maps.length; m++) {
      var grid = sampleGrid(image, maps[m], n);
      if (!grid) continue;
      if (version >= 7) {
        var read = readVersion(grid, n);
        if (read > 0 && read !== version) return readAt(image, corners, read, tried);
      }
      var format = readFormat(grid, n);
      if (!format) continue;
      var codewords = readCodewords(grid, version, format.mask);
      var corrected = correctedData(codewords, version, format.level);
      if (!corrected) continue;
      var text;
      try {
        text = parseSegments(corrected.data, version);
      } catch (unreadable) {
        text = null;
      }
      if (text === null) continue;
      return { text: text, version: version, level: format.level, mask: format.mask,
        corrected: corrected.corrected };
    }
    return null;
  }

  function readTriples(image, triples) {
    for (var t = 0; t < triples.length; t++) {
      var tried = {};
      var versions = versionsNear(image, triples[t]);
      for (var i = 0; i < versions.length; i++) {
        var result = readAt(image, triples[t], versions[i], tried);
        if (result) return result;
      }
    }
    return null;
  }

  function decodeBits(image) {
    var finders = findFinders(image);
    return finders.length >= 3 ? readTriples(image, cornerTriples(finders)) : null;
  }

  function invert(bits) {
    var out = new Uint8Array(bits.length);
    for (var i = 0; i < bits.length; i++) out[i] = bits[i] ^ 1;
    return out;
  }

  function decode(rgba, width, height) {
    if (!rgba || !(width > 0) || !(height > 0) || rgba.length < width * height * 4) return null;
    if (width < 21 || height < 21) return null;
    var lum = luminance(rgba, width, height);
    var hist = histogram(lum);
    var soft = null;
    function denoised() {
      if (!soft) soft = smoothed(lum, width, height);
      return soft;
    }
    var midpoint = null;
    function balanced() {
      if (midpoint === null) midpoint = blockThreshold(denoised(), denoised(), width, height, hist, 40, 0.5);
      return midpoint;
    }
    // Each strategy gives the picture the patterns are looked for in, and the one modules are
    // read from. The midpoint between dark and light comes first. Blur closes the thin light
    // ring of a finder pattern (worst across a tilt): a threshold nearer the dark opens it
    // again, but thins the dark modules, so those are still read at the midpoint.
    var strategies = [
      function () { return blockThreshold(lum, denoised(), width, height, hist, 40, 0.5); },
      balanced,
      function () { return globalThreshold(denoised(), hist); },
      function () { return blockThreshold(denoised(), denoised(), width, height, hist, 16, 0.5); },
      function () {
        var opened = blockThreshold(denoised(), denoised(), width, height, hist, 40, 0.35);
        return opened && { patterns: opened, modules: balanced() };
      }
    ];
    var seen = [];
    for (var k = 0; k < strategies.length; k++) {
      var made = strategies[k]();
      if (!made) continue;
      var image = made.patterns ? made : { patterns: made, modules: made };
      seen.push(image);
      var result = decodeBits({ bits: image.patterns, modules: image.modules, width: width, height: height });
      if (result) return result;
    }
    // White modules on a dark ground are allowed by the standard (reflectance reversal).
    for (k = 0; k < seen.length; k++) {
      var patterns = invert(seen[k].patterns);
      var modules = seen[k].modules === seen[k].patterns ? patterns : invert(seen[k].modules);
      result = decodeBits({ bits: patterns, modules: modules, width: width, height: height });
      if (result) return result;
    }
    return null;
  }

  global.QrDecoder = { decode: decode };
})(typeof window !== "undefined" ? window : this);

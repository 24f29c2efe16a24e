/* callbus page: the formats app.js and wallboard.js share (plain JS, no
 * build step). */
(function () {
  'use strict';

  /* 65 -> "1:05", 3725 -> "1:02:05"; "–" when unknown. */
  function duration(s) {
    if (s == null || isNaN(s)) return '–';
    s = Math.max(0, Math.floor(s));
    var hh = Math.floor(s / 3600), mm = Math.floor(s / 60) % 60, ss = s % 60;
    var two = function (n) { return (n < 10 ? '0' : '') + n; };
    return hh ? hh + ':' + two(mm) + ':' + two(ss) : mm + ':' + two(ss);
  }

  /* Seconds from an RFC 3339 time to now (ms since the epoch); null when
   * there is no time. */
  function secondsSince(iso, now) {
    var t = iso ? Date.parse(iso) : NaN;
    return isNaN(t) ? null : (now - t) / 1000;
  }

  window.CallbusFormat = { duration: duration, secondsSince: secondsSince };
})();

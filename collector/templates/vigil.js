// Progressive enhancement only: every page works without this script.
// The fleet refreshes in place: the same address is fetched again every
// data-refresh seconds and the live part of the page is swapped in.
"use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.fetch || !window.DOMParser) return;
  var every = Math.max(2, parseInt(live.getAttribute("data-refresh"), 10) || 30) * 1000;
  function refresh() {
    if (document.hidden) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.redirected || !r.ok) throw new Error("refresh refused: " + r.status);
        return r.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes));
      })
      .catch(function () { /* keep what is shown; the next round tries again */ });
  }
  window.setInterval(refresh, every);
})();

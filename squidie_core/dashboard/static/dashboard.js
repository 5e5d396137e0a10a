// SquidSonar live refresh: re-fetch this page every data-refresh seconds and swap the
// <main> content, unless the "live" box is unchecked, the tab is hidden, or the user is
// typing in a form. No framework, no external assets.
(function () {
  "use strict";
  var seconds = parseFloat(document.body.getAttribute("data-refresh") || "0");
  var box = document.getElementById("live");
  if (!(seconds > 0) || !box) { return; }
  var key = "squidie-live";
  if (window.localStorage && localStorage.getItem(key) === "off") { box.checked = false; }
  box.addEventListener("change", function () {
    if (window.localStorage) { localStorage.setItem(key, box.checked ? "on" : "off"); }
  });
  var busy = false;
  function editing() {
    var el = document.activeElement;
    if (!el) { return false; }
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }
  function tick() {
    if (busy || !box.checked || document.hidden || editing() ||
        document.querySelector("main details[open]")) { return; }
    busy = true;
    fetch(window.location.href, { headers: { "X-Squidie-Live": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (text === null) { return; }
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("content");
        var here = document.getElementById("content");
        if (fresh && here && fresh.innerHTML !== here.innerHTML) {
          here.innerHTML = fresh.innerHTML;
          document.body.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { busy = false; });
  }
  window.setInterval(tick, seconds * 1000);
})();

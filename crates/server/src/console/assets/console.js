// headcount console: copy buttons, and the arrow keys on charts. Everything works without script.
"use strict";

document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var text = button.getAttribute("data-copy");
  var done = function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () {});
  } else {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); done(); } catch (e) { /* nothing to copy with */ }
    document.body.removeChild(area);
  }
});

// Charts: one tab stop per chart, then the arrow keys (and Home, End) move from day
// to day; without script every day is a tab stop of its own.
document.querySelectorAll("figure.chart svg").forEach(function (svg) {
  var days = Array.prototype.slice.call(svg.querySelectorAll("g.day"));
  if (days.length < 2) return;
  days.forEach(function (g, i) { g.setAttribute("tabindex", i === days.length - 1 ? "0" : "-1"); });
  svg.addEventListener("keydown", function (event) {
    var at = days.indexOf(document.activeElement);
    if (at < 0) return;
    var to = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: days.length - 1 }[event.key];
    if (to === undefined) return;
    event.preventDefault();
    to = Math.max(0, Math.min(days.length - 1, to));
    days[at].setAttribute("tabindex", "-1");
    days[to].setAttribute("tabindex", "0");
    days[to].focus();
  });
});

// Overview charts: data comes from the json_script block inside the polled partial, so every
// htmx refresh of the numbers also refreshes the charts (no second request, no inline script).
(function () {
  "use strict";
  var charts = {};

  function series() {
    var node = document.getElementById("overview-series");
    return node ? JSON.parse(node.textContent) : null;
  }

  function threshold(data) {
    return typeof data.cache_alert_below === "number" ? data.cache_alert_below : 80;
  }

  function draw() {
    var data = series();
    if (!data || typeof Chart === "undefined") return;
    var turns = document.getElementById("chart-turns");
    var cache = document.getElementById("chart-cache");
    if (!charts.turns && turns) {
      charts.turns = new Chart(turns, {
        type: "bar",
        data: { labels: data.labels, datasets: [
          { label: "appends allowed", data: data.turns, backgroundColor: "#146eb4" },
          { label: "rate limited", data: data.denied, backgroundColor: "#b42318" } ] },
        options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
      });
    } else if (charts.turns) {
      charts.turns.data.labels = data.labels;
      charts.turns.data.datasets[0].data = data.turns;
      charts.turns.data.datasets[1].data = data.denied;
      charts.turns.update();
    }
    if (!charts.cache && cache) {
      charts.cache = new Chart(cache, {
        type: "line",
        data: { labels: data.labels, datasets: [
          { label: "hit ratio %", data: data.cache_ratio, borderColor: "#1a7f37", spanGaps: true },
          { label: "alert below " + threshold(data) + " %", data: data.labels.map(function () { return threshold(data); }), borderColor: "#b42318", borderDash: [6, 4], pointRadius: 0 } ] },
        options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 100 } } }
      });
    } else if (charts.cache) {
      charts.cache.data.labels = data.labels;
      charts.cache.data.datasets[0].data = data.cache_ratio;
      charts.cache.data.datasets[1].data = data.labels.map(function () { return threshold(data); });
      charts.cache.update();
    }
  }

  // A collapsed panel (<details data-remember="key">) stays as the user left it, across reloads.
  function remember() {
    var panels = document.querySelectorAll("details[data-remember]");
    Array.prototype.forEach.call(panels, function (panel) {
      var key = "mangaassist.open." + panel.getAttribute("data-remember");
      try { if (window.localStorage.getItem(key) === "1") panel.open = true; } catch (e) { /* storage off */ }
      panel.addEventListener("toggle", function () {
        try { window.localStorage.setItem(key, panel.open ? "1" : "0"); } catch (e) { /* storage off */ }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { remember(); draw(); });
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "metrics") draw();
  });
})();

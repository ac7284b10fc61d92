// Overview charts: data comes from the json_script block inside the polled partial, so every
// htmx refresh of the numbers also refreshes the charts (no second request, no inline script).
(function () {
  "use strict";
  var charts = {};

  function series() {
    var node = document.getElementById("overview-series");
    return node ? JSON.parse(node.textContent) : null;
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
          { label: "alert below 80 %", data: data.labels.map(function () { return 80; }), borderColor: "#b42318", borderDash: [6, 4], pointRadius: 0 } ] },
        options: { animation: false, maintainAspectRatio: false, scales: { y: { min: 0, max: 100 } } }
      });
    } else if (charts.cache) {
      charts.cache.data.labels = data.labels;
      charts.cache.data.datasets[0].data = data.cache_ratio;
      charts.cache.update();
    }
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "metrics") draw();
  });
})();

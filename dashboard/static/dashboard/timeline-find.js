// Finding things in a session's timeline.
//
// 1. The turn the page was opened at: a search result (?turn=<seq>#turn-<seq>) or "Go to turn" /
//    "First turn" (?at=<seq>); the timeline says which in data-found-turn. The server renders the
//    timeline down to it (a search result: up to DETAIL_FIND_MAX_TURNS turns; older than that,
//    this script loads the older pages itself — what "Load older turns" loads — until the turn is
//    on the page) or a window around it (?at=). Then it is scrolled into view, once, and marked
//    (turn--found) — and marked again whenever the timeline is swapped (live.js keeps the turns
//    the page shows when it refreshes, see its depth()).
//
// 2. Find in transcript (#find-bar): every match of the words typed in the turns on the page
//    (the whole text of a collapsed long turn too), how many, and Next / Previous (Enter,
//    Shift+Enter) to step through them: the current one is scrolled into view, its long turn
//    opened. Matches are highlighted with the CSS Custom Highlight API (no change to the turns'
//    markup); the turns holding one carry find-match, the current one find-current. The count
//    follows the timeline when turns are loaded or refreshed.
(function () {
  "use strict";
  var MAX_PAGES = 400;  // 20,000 turns at 50 a page: a bound, not a goal
  var MAX_MATCHES = 5000;  // beyond that the count says "5000+"
  var seq = 0, scrolled = false, busy = false, pages = 0;

  function mark() {
    var turn = document.getElementById("turn-" + seq);
    if (!turn) return false;
    turn.classList.add("turn--found");
    if (!scrolled) {
      scrolled = true;
      turn.scrollIntoView({ block: "center" });
    }
    return true;
  }

  function ensure() {
    if (!(seq > 0) || busy || mark()) return;
    var older = document.querySelector("#load-older [hx-get]");
    if (!older || pages >= MAX_PAGES || typeof htmx === "undefined") return;
    busy = true;
    pages += 1;
    htmx.ajax("GET", older.getAttribute("hx-get"), { target: "#load-older", swap: "outerHTML" }).then(
      function () { busy = false; ensure(); },
      function () { busy = false; });
  }

  // --- find in transcript ----------------------------------------------------------------------
  var bar, input, status, matches = [], current = -1, timer = null;
  var highlights = !!(window.CSS && CSS.highlights && window.Highlight);

  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  function turnsShown() {
    return document.querySelectorAll("#timeline li.turn");
  }

  function clearMarks() {
    if (highlights) {
      CSS.highlights.delete("find-hit");
      CSS.highlights.delete("find-current");
    }
    document.querySelectorAll("#timeline .find-match, #timeline .find-current").forEach(function (el) {
      el.classList.remove("find-match", "find-current");
    });
  }

  function collect(pattern) {
    var found = [];
    var texts = document.querySelectorAll("#timeline li.turn .turn-text:not(.turn-preview)");
    for (var i = 0; i < texts.length && found.length < MAX_MATCHES; i++) {
      var turn = texts[i].closest("li.turn");
      var walker = document.createTreeWalker(texts[i], NodeFilter.SHOW_TEXT);
      for (var node = walker.nextNode(); node && found.length < MAX_MATCHES; node = walker.nextNode()) {
        pattern.lastIndex = 0;
        var m;
        while ((m = pattern.exec(node.data)) !== null && found.length < MAX_MATCHES) {
          if (!m[0].length) { pattern.lastIndex += 1; continue; }
          var range = document.createRange();
          range.setStart(node, m.index);
          range.setEnd(node, m.index + m[0].length);
          found.push({ range: range, turn: turn });
        }
      }
    }
    return found;
  }

  function say() {
    var shown = turnsShown().length;
    var timeline = document.getElementById("timeline");
    var total = Math.max(shown, timeline ? parseInt(timeline.getAttribute("data-turn-count") || "0", 10) : 0);
    var scope = shown === total || !total
      ? "in the " + shown + " turn" + (shown === 1 ? "" : "s")
      : "in the " + shown + " turns on the page (of " + total + ")";
    if (!input.value.trim()) {
      status.textContent = "";
    } else if (!matches.length) {
      status.textContent = "No match " + scope + ".";
    } else {
      var n = matches.length >= MAX_MATCHES ? MAX_MATCHES + "+" : String(matches.length);
      var noun = " match" + (matches.length === 1 ? "" : "es") + " ";
      status.textContent = (current >= 0 ? (current + 1) + " of " + n : n) + noun + scope + ".";
    }
    bar.dataset.matches = String(matches.length);
    bar.dataset.current = String(current + 1);
  }

  function paint() {
    clearMarks();
    if (!matches.length) return;
    if (highlights) {
      var all = new Highlight();
      matches.forEach(function (x) { all.add(x.range); });
      CSS.highlights.set("find-hit", all);
      if (current >= 0) CSS.highlights.set("find-current", new Highlight(matches[current].range));
    }
    matches.forEach(function (x) { x.turn.classList.add("find-match"); });
    if (current >= 0) matches[current].turn.classList.add("find-current");
  }

  // Search again (after typing, or when the timeline changed); keepTurn: stay at the match in
  // the same turn if there still is one.
  function run(keepTurn) {
    var text = input.value.trim();
    var before = current >= 0 && matches[current] ? matches[current].turn.id : null;
    matches = text ? collect(new RegExp(escapeRegExp(text), "giu")) : [];
    current = -1;  // counted and highlighted; Next (Enter) goes to the first
    if (keepTurn && before) {
      for (var i = 0; i < matches.length; i++) {
        if (matches[i].turn.id === before) { current = i; break; }
      }
    }
    paint();
    say();
  }

  function go(step) {
    if (timer) { clearTimeout(timer); timer = null; run(false); }
    if (!matches.length) return;
    current = current < 0 ? (step < 0 ? matches.length - 1 : 0) : (current + step + matches.length) % matches.length;
    var hit = matches[current];
    var details = hit.range.startContainer.parentElement && hit.range.startContainer.parentElement.closest("details");
    if (details && !details.open) details.open = true;
    paint();
    say();
    var target = hit.range.startContainer.parentElement || hit.turn;
    var box = hit.range.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight || (!box.width && !box.height)) {
      target.scrollIntoView({ block: "center" });
      box = hit.range.getBoundingClientRect();
      if (box.height && (box.top < 0 || box.bottom > window.innerHeight)) {
        window.scrollBy(0, box.top - window.innerHeight / 2);
      }
    }
  }

  function startFind() {
    bar = document.getElementById("find-bar");
    if (!bar) return;
    input = document.getElementById("find-q");
    status = document.getElementById("find-status");
    bar.hidden = false;
    bar.addEventListener("submit", function (event) {  // Enter, or Next
      event.preventDefault();
      go(1);
    });
    document.getElementById("find-prev").addEventListener("click", function () { go(-1); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && event.shiftKey) {
        event.preventDefault();
        go(-1);
      } else if (event.key === "Escape" && input.value) {
        event.preventDefault();
        input.value = "";
        run(false);
      }
    });
    input.addEventListener("input", function () {
      if (timer) clearTimeout(timer);
      timer = setTimeout(function () { timer = null; run(false); }, 150);
    });
  }

  function start() {
    var timeline = document.getElementById("timeline");
    seq = timeline ? parseInt(timeline.getAttribute("data-found-turn") || "0", 10) : 0;
    startFind();
    document.body.addEventListener("htmx:afterSettle", function () {
      ensure();
      if (bar && input.value.trim()) run(true);
    });
    ensure();
  }

  // htmx is loaded with defer, before this script: it exists at DOMContentLoaded.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

// "/" focuses the page's search box (the top bar's, or the search page's own query field) — not
// while someone types: in an input, a textarea, a select or anything contenteditable the key is
// theirs. The box is marked data-search-box; with modifier keys held the key is left alone too.
(function () {
  "use strict";

  function typing(el) {
    if (!el || el === document.body || el === document.documentElement) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT";
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented || event.isComposing) return;
    if (typing(event.target) || typing(document.activeElement)) return;
    var box = document.querySelector("[data-search-box]");
    if (!box) return;
    event.preventDefault();  // the "/" is not typed into the box
    box.focus();
    if (typeof box.select === "function") box.select();
  });
})();

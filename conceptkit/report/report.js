// conceptkit report: filtering, search and a lightbox; vanilla JS, no network.
(function () {
  "use strict";
  var lightbox = document.getElementById("lightbox");
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest ? ev.target.closest("a.strip") : null;
    if (link && lightbox) {
      ev.preventDefault();
      if (!lightbox.firstChild) {
        lightbox.appendChild(document.createElement("img"));
        lightbox.appendChild(document.createElement("p"));
      }
      lightbox.querySelector("img").src = link.getAttribute("href");
      lightbox.querySelector("p").textContent = link.getAttribute("title") || "";
      lightbox.hidden = false;
      return;
    }
    if (lightbox && !lightbox.hidden && lightbox.contains(ev.target)) { lightbox.hidden = true; }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape" && lightbox) { lightbox.hidden = true; }
  });

  var cards = Array.prototype.slice.call(document.querySelectorAll(".card"));
  if (!cards.length) { return; }
  var search = document.getElementById("search");
  var category = document.getElementById("category");
  var concept = document.getElementById("concept");
  var below = document.getElementById("show-below");
  var count = document.getElementById("count");
  var divider = document.querySelector(".divider");
  var chips = Array.prototype.slice.call(document.querySelectorAll(".legend button"));

  function apply() {
    var q = search.value.trim().toLowerCase();
    var cat = category.value, lab = concept.value, showBelow = below.checked;
    var shown = 0, shownBelow = 0;
    cards.forEach(function (card) {
      var ok = (!cat || card.dataset.category === cat) &&
        (!lab || card.dataset.label === lab) &&
        (showBelow || !card.classList.contains("below")) &&
        (!q || card.dataset.text.indexOf(q) >= 0);
      card.hidden = !ok;
      if (ok) { shown += 1; if (card.classList.contains("below")) { shownBelow += 1; } }
    });
    if (divider) { divider.hidden = shownBelow === 0; }
    count.textContent = shown + " of " + cards.length + " units";
    chips.forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.category === cat)); });
    var state = [];
    if (cat) { state.push("category=" + encodeURIComponent(cat)); }
    if (lab) { state.push("concept=" + encodeURIComponent(lab)); }
    if (q) { state.push("q=" + encodeURIComponent(q)); }
    var hash = state.length ? "#" + state.join("&") : "";
    if (window.location.hash !== hash && window.history && window.history.replaceState) {
      window.history.replaceState(null, "", hash || window.location.pathname + window.location.search);
    }
  }

  function fromHash() {
    window.location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i < 0) { return; }
      var k = kv.slice(0, i), v = decodeURIComponent(kv.slice(i + 1));
      if (k === "category") { category.value = v; }
      if (k === "concept") { concept.value = v; }
      if (k === "q") { search.value = v; }
    });
  }

  chips.forEach(function (b) {
    b.addEventListener("click", function () {
      category.value = category.value === b.dataset.category ? "" : b.dataset.category;
      apply();
    });
  });
  [search, category, concept, below].forEach(function (el) {
    el.addEventListener(el === search ? "input" : "change", apply);
  });
  fromHash();
  apply();
})();

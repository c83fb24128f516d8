/* Style Gallery run page: the grid's column count (remembered), and tiles shaped like the base
   image. Live progress comes from live.js, rendered on the server. No dependencies. */
(function () {
  "use strict";
  var grid = document.getElementById("iteration-grid");
  var range = document.getElementById("grid-columns");
  var output = document.getElementById("grid-columns-value");
  var STORAGE_KEY = "styleGallery.gridColumns";
  if (!grid || !range) return;

  function setColumns(n) {
    grid.style.setProperty("--columns", n);
    range.value = n;
    range.setAttribute("aria-valuetext", n + (n == 1 ? " column" : " columns"));
    output.textContent = n;
  }

  var stored = NaN;
  try { stored = parseInt(window.localStorage.getItem(STORAGE_KEY), 10); } catch (e) { /* storage blocked */ }
  setColumns(stored >= 1 && stored <= 8 ? stored : (window.innerWidth < 640 ? 2 : 3));
  range.addEventListener("input", function () {
    setColumns(range.value);
    try { window.localStorage.setItem(STORAGE_KEY, range.value); } catch (e) { /* storage blocked */ }
  });

  // Even tiles: every image takes the base image's shape, as the engine's inputs did (the style
  // is cropped, or squashed with style fit "resize", to the content's proportions).
  var base = grid.querySelectorAll(".grid-input img")[1];
  function shapeTiles() {
    if (base.naturalWidth) grid.style.setProperty("--tile-ratio", base.naturalWidth + " / " + base.naturalHeight);
  }
  if (base) {
    if (base.complete) shapeTiles();
    else base.addEventListener("load", shapeTiles);
  }
})();

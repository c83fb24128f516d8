/* Style Gallery compare and sweep pages: one iteration slider for every run, and the zoomed crop.
   The columns are rendered on the server (live.js swaps them in while runs compute, and when the
   slider moves). Drag a box on any image, or focus an image and use the arrow keys (Shift+arrows
   resize), or type x, y, width, height, to see that region from every run magnified with
   nearest-neighbour scaling. The iteration and the region are kept in the address, so a
   comparison can be bookmarked (links marked data-view-link follow them: the sweep's PNG). On the
   sweep page a click (not a drag) or Enter on a picture opens its run. Region coordinates are
   pixels of the reference image (the first loaded run's); runs of another size get the region
   scaled proportionally, as static/gallery/crop.js (the twin of gallery/crop.py) computes it. */
(function () {
  "use strict";
  var Crop = window.StyleGalleryCrop; // static/gallery/crop.js, loaded first
  var columns = Array.prototype.slice.call(document.querySelectorAll(".compare-column"));
  var form = document.getElementById("crop-form");
  var panel = document.getElementById("crop-panel");
  var canvases = Array.prototype.slice.call(panel.querySelectorAll("[data-crop-canvas]"));
  var cropCaptions = Array.prototype.slice.call(panel.querySelectorAll("[data-crop-caption]"));
  var note = panel.querySelector("[data-crop-note]");
  var summary = panel.querySelector("[data-crop-summary]");
  var ZOOM_TARGET = 480; // about how many canvas pixels a zoomed crop is wide
  var crop = readForm(); // {x, y, w, h} in reference pixels, or null
  var pending = null;

  function slider() { return document.getElementById("iteration-slider"); }

  function imageOf(column) { return column.querySelector("[data-compare-image]"); }

  function labelOf(column) { return column.querySelector(".run-label").textContent; }

  function loaded(image) {
    return image && image.complete && image.naturalWidth > 0;
  }

  /* An image's size at its run's full size: an iteration saved at a coarse scale (data-rows
     below data-full-rows) stands for the full-size picture, so crops stay in full-size pixels. */
  function fullSize(image) {
    return Crop.fullSize(image.naturalWidth, image.naturalHeight, parseFloat(image.getAttribute("data-rows")),
                         parseFloat(image.getAttribute("data-full-rows")));
  }

  function reference() {
    var found = null;
    columns.some(function (column) {
      var image = imageOf(column);
      if (loaded(image)) found = fullSize(image);
      return found;
    });
    return found;
  }

  // ---- Iteration slider and address -----------------------------------------------------------
  function selectedNumber() {
    var numbers = (slider().getAttribute("data-numbers") || "").split(",").filter(Boolean);
    var index = parseInt(slider().value, 10);
    return index >= numbers.length ? null : numbers[index];
  }

  // The iteration and the crop, as the address and the export links keep them.
  function viewQuery() {
    var selected = selectedNumber();
    var parts = [];
    if (selected !== null) parts.push("iteration=" + selected);
    if (crop) parts.push("crop=" + [crop.x, crop.y, crop.w, crop.h].join(","));
    return parts.join("&");
  }

  // The page's own parameters (the compare page's ?runs=), then the view.
  function query() {
    var kept = window.location.search.replace(/^\?/, "").split("&").filter(function (part) {
      return part && !/^(iteration|crop|fragment)=/.test(part);
    });
    var view = viewQuery();
    return kept.concat(view ? [view] : []).join("&");
  }

  function followView() {
    var view = viewQuery();
    Array.prototype.forEach.call(document.querySelectorAll("a[data-view-link]"), function (link) {
      link.href = link.getAttribute("data-view-link") + (view ? "?" + view : "");
    });
  }

  function saveState() {
    window.history.replaceState(null, "", window.location.pathname + "?" + query());
    followView();
  }

  function changeIteration() {
    saveState();
    window.clearTimeout(pending);
    pending = window.setTimeout(function () {
      // A fragment asked for before a crop was drawn brings links without it: follow the view again.
      window.styleGalleryLive.load(window.location.pathname + "?" + query() + "&fragment=live").then(followView);
    }, 120);
  }

  document.addEventListener("input", function (event) {
    if (event.target.id === "iteration-slider") changeIteration();
  });
  document.addEventListener("live:swapped", function () {
    var range = slider();
    if (document.activeElement !== range && range.value !== range.getAttribute("value")) range.value = range.getAttribute("value");
    render();
  });
  document.addEventListener("load", function (event) {
    if (event.target.matches && event.target.matches("[data-compare-image]")) render();
  }, true);

  // ---- Crop -----------------------------------------------------------------------------------
  // The region's arithmetic is crop.js's (the twin of gallery/crop.py, which the sweep's PNG uses).
  function clampCrop(region, ref) { return Crop.clamp(region, ref); }

  function scaled(region, ref, image) { return Crop.scaled(region, ref, image.naturalWidth, image.naturalHeight); }

  function drawBoxes(region, ref) {
    columns.forEach(function (column) {
      var box = column.querySelector("[data-crop-box]");
      if (!region || !ref || !loaded(imageOf(column))) { box.hidden = true; return; }
      box.hidden = false;
      box.style.setProperty("--crop-left", (100 * region.x / ref.w) + "%");
      box.style.setProperty("--crop-top", (100 * region.y / ref.h) + "%");
      box.style.setProperty("--crop-width", (100 * region.w / ref.w) + "%");
      box.style.setProperty("--crop-height", (100 * region.h / ref.h) + "%");
    });
  }

  function render() {
    var ref = reference();
    var region = clampCrop(crop, ref);
    drawBoxes(region, ref);
    panel.hidden = !region;
    if (!region) return;
    summary.textContent = "x " + region.x + ", y " + region.y + ", " + region.w + "×" + region.h + " px";
    if (!ref) return;
    var differentSizes = [];
    columns.forEach(function (column, k) {
      var image = imageOf(column);
      var canvas = canvases[k];
      var caption = cropCaptions[k];
      if (!loaded(image)) {
        canvas.width = 1;
        canvas.height = 1;
        caption.textContent = "no image";
        return;
      }
      var part = scaled(region, ref, image);
      var magnification = Math.max(1, Math.min(32, Math.round(ZOOM_TARGET / Math.max(part.w, part.h))));
      canvas.width = part.w * magnification;
      canvas.height = part.h * magnification;
      var context = canvas.getContext("2d");
      context.imageSmoothingEnabled = false;
      context.drawImage(image, part.x, part.y, part.w, part.h, 0, 0, canvas.width, canvas.height);
      caption.textContent = "×" + magnification;
      if (image.naturalWidth !== ref.w || image.naturalHeight !== ref.h) {
        differentSizes.push(labelOf(column) + " is " + image.naturalWidth + "×" + image.naturalHeight + " px: its region is x " + part.x + ", y " + part.y + ", " + part.w + "×" + part.h);
        caption.textContent += " · scaled region";
      }
    });
    note.hidden = !differentSizes.length;
    note.textContent = differentSizes.length
      ? "The runs differ in size. Coordinates are in the first run’s pixels (" + ref.w + "×" + ref.h + "); the region is scaled proportionally: " + differentSizes.join("; ") + "."
      : "";
  }

  function readForm() {
    var values = {};
    var valid = ["x", "y", "w", "h"].every(function (key) {
      values[key] = parseInt(form.elements[key].value, 10);
      return !isNaN(values[key]) && values[key] >= (key === "w" || key === "h" ? 1 : 0);
    });
    return valid ? values : null;
  }

  function fillForm(region) {
    ["x", "y", "w", "h"].forEach(function (key) { form.elements[key].value = region ? region[key] : ""; });
  }

  function setCrop(region) {
    crop = clampCrop(region, reference());
    fillForm(crop);
    render();
    saveState();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var values = readForm();
    if (values) setCrop(values);
  });
  form.querySelector("[data-crop-clear]").addEventListener("click", function () { setCrop(null); });

  // Dragging a box on any image, with mouse, pen or finger; or the arrow keys on a focused image.
  columns.forEach(function (column) {
    var frame = column.querySelector("[data-frame]");
    var start = null;

    function point(event) {
      var ref = reference();
      var rect = imageOf(column).getBoundingClientRect();
      var fx = Math.max(0, Math.min(1, (event.clientX - rect.left) / rect.width));
      var fy = Math.max(0, Math.min(1, (event.clientY - rect.top) / rect.height));
      return { x: Math.round(fx * ref.w), y: Math.round(fy * ref.h) };
    }

    function regionTo(event) {
      var end = point(event);
      return {
        x: Math.min(start.x, end.x),
        y: Math.min(start.y, end.y),
        w: Math.abs(end.x - start.x),
        h: Math.abs(end.y - start.y),
      };
    }

    frame.addEventListener("pointerdown", function (event) {
      if (!loaded(imageOf(column)) || event.button !== 0) return;
      event.preventDefault();
      frame.setPointerCapture(event.pointerId);
      start = point(event);
    });
    frame.addEventListener("pointermove", function (event) {
      if (!start) return;
      var region = regionTo(event);
      if (region.w >= 1 && region.h >= 1) drawBoxes(region, reference());
    });
    function finish(event) {
      if (!start) return;
      var region = regionTo(event);
      start = null;
      if (region.w >= 2 && region.h >= 2) setCrop(region);
      else if (frame.hasAttribute("data-open-url")) window.location.href = frame.getAttribute("data-open-url");
      else render(); // a click, not a drag: keep the current region
    }
    frame.addEventListener("pointerup", finish);
    frame.addEventListener("pointercancel", function () { start = null; render(); });

    var MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    frame.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && frame.hasAttribute("data-open-url")) {
        window.location.href = frame.getAttribute("data-open-url");
        return;
      }
      var move = MOVES[event.key];
      var ref = reference();
      if (!move || !ref) return;
      event.preventDefault();
      var step = Math.max(1, Math.round(ref.w / 40));
      var region = crop || { x: Math.round(ref.w / 4), y: Math.round(ref.h / 4), w: Math.round(ref.w / 4), h: Math.round(ref.h / 4) };
      if (event.shiftKey) {
        region = { x: region.x, y: region.y, w: Math.max(2, region.w + move[0] * step), h: Math.max(2, region.h + move[1] * step) };
      } else {
        region = {
          x: Math.max(0, Math.min(region.x + move[0] * step, ref.w - region.w)),
          y: Math.max(0, Math.min(region.y + move[1] * step, ref.h - region.h)),
          w: region.w,
          h: region.h,
        };
      }
      setCrop(region);
    });
  });

  render();
})();

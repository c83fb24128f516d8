/* Style Gallery compare page: one iteration slider for every run, and the zoomed crop.
   Drag a box on any image (or type x, y, width, height) to see that region from every run,
   magnified with nearest-neighbour scaling so pixels stay visible. The iteration and the region
   are kept in the address (history.replaceState), so a comparison can be bookmarked.
   Region coordinates are pixels of the reference image (the first run's); runs of another size
   get the region scaled proportionally. No dependencies. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("compare-data").textContent);
  var columns = Array.prototype.slice.call(document.querySelectorAll(".compare-column"));
  // The grid's column count: set here, since the Content-Security-Policy forbids style= attributes.
  Array.prototype.forEach.call(document.querySelectorAll("[data-count]"), function (grid) {
    grid.style.setProperty("--count", grid.getAttribute("data-count"));
  });
  var slider = document.getElementById("iteration-slider");
  var sliderValue = document.getElementById("iteration-value");
  var form = document.getElementById("crop-form");
  var panel = document.getElementById("crop-panel");
  var canvases = Array.prototype.slice.call(panel.querySelectorAll("[data-crop-canvas]"));
  var cropCaptions = Array.prototype.slice.call(panel.querySelectorAll("[data-crop-caption]"));
  var note = panel.querySelector("[data-crop-note]");
  var summary = panel.querySelector("[data-crop-summary]");
  var crop = data.crop; // {x, y, w, h} in reference pixels, or null
  var ZOOM_TARGET = 480; // about how many canvas pixels a zoomed crop is wide

  function images() {
    return columns.map(function (column) { return column.querySelector("[data-compare-image]"); });
  }

  function loaded(image) {
    return image && !image.hidden && image.complete && image.naturalWidth > 0;
  }

  function reference() {
    var found = null;
    images().some(function (image) {
      if (loaded(image)) found = { w: image.naturalWidth, h: image.naturalHeight };
      return found;
    });
    return found;
  }

  // ---- Iteration slider -----------------------------------------------------------------------
  function selectedNumber() {
    var index = parseInt(slider.value, 10);
    return index >= data.numbers.length ? null : data.numbers[index];
  }

  function shownIteration(run, selected) {
    var shown = null;
    run.iterations.forEach(function (iteration) {
      if (selected === null || iteration.number <= selected) shown = iteration;
    });
    return shown;
  }

  function applyIteration() {
    var selected = selectedNumber();
    sliderValue.textContent = selected === null ? "each run’s last" : selected;
    columns.forEach(function (column, k) {
      var run = data.runs[k];
      var shown = shownIteration(run, selected);
      var image = column.querySelector("[data-compare-image]");
      var missing = column.querySelector("[data-missing]");
      var caption = column.querySelector("[data-caption]");
      if (shown) {
        if (image.getAttribute("src") !== shown.image) image.src = shown.image;
        image.hidden = false;
        missing.hidden = true;
        caption.textContent = "Iteration " + shown.number + (selected !== null && shown.number !== selected ? " (its latest before " + selected + ")" : "") + " · loss " + shown.loss;
      } else {
        image.hidden = true;
        missing.hidden = false;
        missing.textContent = "No saved iteration up to " + selected + " yet";
        caption.textContent = "–";
      }
    });
    render();
    saveState();
  }

  // ---- Address --------------------------------------------------------------------------------
  function saveState() {
    var selected = selectedNumber();
    var query = "runs=" + data.runs.map(function (run) { return run.id; }).join(",");
    if (selected !== null) query += "&iteration=" + selected;
    if (crop) query += "&crop=" + [crop.x, crop.y, crop.w, crop.h].join(",");
    window.history.replaceState(null, "", window.location.pathname + "?" + query);
  }

  // ---- Crop -----------------------------------------------------------------------------------
  function clampCrop(region, ref) {
    if (!region || !ref) return region;
    var x = Math.max(0, Math.min(region.x, ref.w - 1));
    var y = Math.max(0, Math.min(region.y, ref.h - 1));
    return { x: x, y: y, w: Math.max(1, Math.min(region.w, ref.w - x)), h: Math.max(1, Math.min(region.h, ref.h - y)) };
  }

  function scaled(region, ref, image) {
    var fx = image.naturalWidth / ref.w;
    var fy = image.naturalHeight / ref.h;
    var x = Math.round(region.x * fx);
    var y = Math.round(region.y * fy);
    return {
      x: x,
      y: y,
      w: Math.max(1, Math.min(Math.round(region.w * fx), image.naturalWidth - x)),
      h: Math.max(1, Math.min(Math.round(region.h * fy), image.naturalHeight - y)),
    };
  }

  function drawBoxes(region, ref) {
    columns.forEach(function (column) {
      var box = column.querySelector("[data-crop-box]");
      if (!region || !ref) { box.hidden = true; return; }
      box.hidden = false;
      box.style.left = (100 * region.x / ref.w) + "%";
      box.style.top = (100 * region.y / ref.h) + "%";
      box.style.width = (100 * region.w / ref.w) + "%";
      box.style.height = (100 * region.h / ref.h) + "%";
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
    images().forEach(function (image, k) {
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
        differentSizes.push(data.runs[k].label + " is " + image.naturalWidth + "×" + image.naturalHeight + " px: its region is x " + part.x + ", y " + part.y + ", " + part.w + "×" + part.h);
        caption.textContent += " · scaled region";
      }
    });
    note.hidden = !differentSizes.length;
    note.textContent = differentSizes.length
      ? "The runs differ in size. Coordinates are in " + data.runs[0].label + "’s pixels (" + ref.w + "×" + ref.h + "); the region is scaled proportionally: " + differentSizes.join("; ") + "."
      : "";
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
    var values = {};
    var valid = ["x", "y", "w", "h"].every(function (key) {
      values[key] = parseInt(form.elements[key].value, 10);
      return !isNaN(values[key]) && values[key] >= (key === "w" || key === "h" ? 1 : 0);
    });
    if (valid) setCrop(values);
  });
  form.querySelector("[data-crop-clear]").addEventListener("click", function () { setCrop(null); });

  // Dragging a box on any image, with mouse, pen or finger.
  columns.forEach(function (column) {
    var frame = column.querySelector("[data-frame]");
    var image = column.querySelector("[data-compare-image]");
    var start = null;

    function point(event) {
      var ref = reference();
      var rect = image.getBoundingClientRect();
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
      if (!loaded(image) || event.button !== 0) return;
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
      else render(); // a click, not a drag: keep the current region
    }
    frame.addEventListener("pointerup", finish);
    frame.addEventListener("pointercancel", function () { start = null; render(); });
    image.addEventListener("load", render);
  });

  slider.addEventListener("input", applyIteration);
  fillForm(crop);
  render();
})();

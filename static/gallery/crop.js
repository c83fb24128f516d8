/* Style Gallery: the crop zoom's arithmetic, the twin of gallery/crop.py (the sweep's PNG uses that
   one), line for line and in the same order of operations, so the page and the exported PNG show the
   same pixels. Every rounding is roundHalfUp, Math.floor(v + 0.5): Python's round goes to even on
   ties and Math.round differs from it just below one half, so neither is used. No dependencies. */
(function () {
  "use strict";

  function roundHalfUp(value) {
    return Math.floor(value + 0.5);
  }

  /* {w, h} an image of width × height stands for at its run's full size: an iteration saved at
     `rows` of a run of `fullRows` (either unknown: the image's own size). */
  function fullSize(width, height, rows, fullRows) {
    var factor = rows > 0 && fullRows > 0 ? fullRows / rows : 1;
    return { w: roundHalfUp(width * factor), h: roundHalfUp(height * factor) };
  }

  /* The crop {x, y, w, h} moved and shrunk to lie within a reference {w, h}; null stays null. */
  function clamp(region, ref) {
    if (!region || !ref) return region;
    var x = Math.max(0, Math.min(region.x, ref.w - 1));
    var y = Math.max(0, Math.min(region.y, ref.h - 1));
    return { x: x, y: y, w: Math.max(1, Math.min(region.w, ref.w - x)), h: Math.max(1, Math.min(region.h, ref.h - y)) };
  }

  /* The crop (in reference pixels) as {x, y, w, h} of an image width × height. */
  function scaled(region, ref, width, height) {
    var fx = width / ref.w;
    var fy = height / ref.h;
    var x = Math.min(roundHalfUp(region.x * fx), width - 1);
    var y = Math.min(roundHalfUp(region.y * fy), height - 1);
    return {
      x: x,
      y: y,
      w: Math.max(1, Math.min(roundHalfUp(region.w * fx), width - x)),
      h: Math.max(1, Math.min(roundHalfUp(region.h * fy), height - y)),
    };
  }

  window.StyleGalleryCrop = { roundHalfUp: roundHalfUp, fullSize: fullSize, clamp: clamp, scaled: scaled };
})();

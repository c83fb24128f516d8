/* Style Gallery run page: grid column control, and live progress while a run is queued or running.
   Polls the run's progress endpoint, moves the progress bar, and adds new saved iterations to
   the grid without reloading the page. No dependencies. */
(function () {
  "use strict";

  // ---- Column count -------------------------------------------------------------------------
  var grid = document.getElementById("iteration-grid");
  var range = document.getElementById("grid-columns");
  var output = document.getElementById("grid-columns-value");
  var STORAGE_KEY = "styleGallery.gridColumns";

  function setColumns(n) {
    grid.style.setProperty("--columns", n);
    range.value = n;
    output.textContent = n;
  }

  if (grid && range) {
    var stored = NaN;
    try { stored = parseInt(window.localStorage.getItem(STORAGE_KEY), 10); } catch (e) { /* storage blocked */ }
    setColumns(stored >= 1 && stored <= 8 ? stored : (window.innerWidth < 640 ? 2 : 3));
    range.addEventListener("input", function () {
      setColumns(range.value);
      try { window.localStorage.setItem(STORAGE_KEY, range.value); } catch (e) { /* storage blocked */ }
    });
  }

  // ---- Even tiles: every image takes the base image's shape, as the engine's inputs did -------
  // (the style is cropped, or squashed with style fit "resize", to the content's proportions).
  var base = grid && grid.querySelectorAll(".grid-input img")[1];
  function shapeTiles() {
    if (base.naturalWidth) grid.style.setProperty("--tile-ratio", base.naturalWidth + " / " + base.naturalHeight);
  }
  if (base) {
    if (base.complete) shapeTiles();
    else base.addEventListener("load", shapeTiles);
  }

  // ---- Formatting (mirrors gallery/views/pages.py) ------------------------------------------
  function formatLoss(value) {
    if (value === null || value === undefined) return "–";
    if (!isFinite(value)) return "diverged";
    var text = Number(value).toPrecision(3);
    if (text.indexOf("e") >= 0) {
      var parts = text.split("e");
      return String(Number(parts[0])) + "e" + parseInt(parts[1], 10);
    }
    return String(Number(text));
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    var total = Math.round(seconds);
    var minutes = Math.floor(total / 60);
    var secs = total % 60;
    if (minutes < 60) return minutes + " min " + (secs < 10 ? "0" : "") + secs + " s";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return hours + " h " + (minutes < 10 ? "0" : "") + minutes + " min";
  }

  // ---- Live progress ------------------------------------------------------------------------
  // The bar's width is set here, not in a style= attribute, which the Content-Security-Policy forbids.
  var progressBar = document.querySelector("[data-progress-bar]");
  if (progressBar) progressBar.style.width = progressBar.getAttribute("data-progress") + "%";

  var panel = document.getElementById("run-progress");
  if (!panel || panel.getAttribute("data-active") !== "true") return;

  var progressUrl = panel.getAttribute("data-progress-url");
  var chartUrl = panel.getAttribute("data-chart-url");
  var pollMs = parseInt(panel.getAttribute("data-poll-ms"), 10) || 2000;
  var lastNumber = parseInt(panel.getAttribute("data-last-number"), 10);
  if (isNaN(lastNumber)) lastNumber = -1;
  var failures = 0;
  var ACTIVE = { queued: true, running: true };
  var STATUS_TEXT = { queued: "Queued", running: "Running", done: "Done", failed: "Failed", cancelled: "Cancelled" };

  function $(selector) { return document.querySelector(selector); }

  function setText(selector, text) {
    var element = $(selector);
    if (element) element.textContent = text;
  }

  function addIteration(saved) {
    var template = document.getElementById("iteration-template");
    var figure = template.content.firstElementChild.cloneNode(true);
    var caption = "Iteration " + saved.number + " · loss " + formatLoss(saved.loss) + " · " + formatDuration(saved.seconds);
    figure.setAttribute("data-number", saved.number);
    var link = figure.querySelector(".grid-link");
    link.href = saved.image_url;
    link.setAttribute("data-caption", caption);
    link.setAttribute("data-download", saved.image_url + "?download=1");
    var image = link.querySelector("img");
    image.src = saved.thumbnail_url;
    image.alt = "Iteration " + saved.number;
    figure.querySelector('[data-field="title"]').textContent = "Iteration " + saved.number;
    figure.querySelector('[data-field="loss"]').textContent = formatLoss(saved.loss);
    figure.querySelector('[data-field="seconds"]').textContent = formatDuration(saved.seconds);
    figure.querySelector('[data-field="download"]').href = saved.image_url + "?download=1";
    var continueTemplate = grid.getAttribute("data-continue-template");
    var continueLink = figure.querySelector('[data-field="continue"]');
    if (continueLink) continueLink.href = continueTemplate.replace("__N__", saved.number);
    grid.appendChild(figure);
    var empty = $("[data-grid-empty]");
    if (empty) empty.remove();
    var latest = $("[data-continue-latest]");
    if (latest && continueTemplate) {
      latest.href = continueTemplate.replace("__N__", saved.number);
      latest.hidden = false;
      setText("[data-latest-number]", saved.number);
    }
    var downloadRun = $("[data-download-run]");
    if (downloadRun) downloadRun.hidden = false;
  }

  function refreshChart() {
    fetch(chartUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        var chart = document.getElementById("loss-chart");
        if (html && chart) chart.outerHTML = html;
      })
      .catch(function () { /* the next new iteration tries again */ });
  }

  function update(data) {
    var done = data.iteration || 0;
    var total = data.iterations || 0;
    var percent = total ? Math.min(100, Math.round(100 * done / total)) : 0;
    var bar = $("[data-progress-bar]");
    bar.style.width = percent + "%";
    bar.parentNode.setAttribute("aria-valuenow", done);
    setText("[data-progress-percent]", percent + "%");
    setText("[data-progress-text]", data.status === "queued" ? "Queued: waiting for a worker" : "Iteration " + done + " of " + total);
    setText('[data-stat="seconds_per_iteration"]', formatDuration(data.seconds_per_iteration));
    setText('[data-stat="eta"]', data.eta_seconds === null || data.eta_seconds === undefined ? "–" : formatDuration(data.eta_seconds));
    if (data.elapsed_seconds !== undefined) setText('[data-stat="elapsed"]', formatDuration(data.elapsed_seconds));
    if (data.loss !== undefined) setText('[data-stat="loss"]', formatLoss(data.loss));

    var status = $("[data-run-status]");
    status.textContent = STATUS_TEXT[data.status] || data.status;
    status.className = "status status-" + data.status;

    var added = false;
    (data.saved || []).forEach(function (saved) {
      if (saved.number > lastNumber) {
        addIteration(saved);
        lastNumber = saved.number;
        added = true;
      }
    });
    setText("[data-saved-count]", grid.querySelectorAll(".grid-item[data-number]").length + " saved");
    panel.setAttribute("data-last-number", lastNumber);

    if (!ACTIVE[data.status]) {
      panel.setAttribute("data-active", "false");
      bar.parentNode.classList.remove("progress-active");
      setText('[data-stat="eta"]', "–");
      var cancel = $("[data-cancel-form]");
      if (cancel) cancel.remove();
      refreshChart();
      return false;
    }
    if (added) refreshChart();
    return true;
  }

  function poll() {
    fetch(progressUrl + "?after=" + lastNumber, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        if (update(data)) window.setTimeout(poll, pollMs);
      })
      .catch(function () {
        // Back off while the server is unreachable, but keep watching.
        failures += 1;
        window.setTimeout(poll, Math.min(30000, pollMs * Math.pow(2, failures)));
      });
  }

  window.setTimeout(poll, 300);
})();

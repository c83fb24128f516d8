/* Style Gallery live pages: the server renders every live part from the same templates as the
   first load; this script only fetches them and swaps them in, by id. No dependencies.

   A part in a response is an element with an id and data-live-part:
     data-live-part            replaces the element with that id, when its markup differs;
     data-live-part="append"   moves its children to the end of the element with that id;
     data-live-part="text"     sets the text of the element with that id (an aria-live region
                               must stay the same node to be read out);
     data-live-part="attributes" copies its attributes (a control the user may be holding).
   The page polls #live-poller's data-live-url every data-live-ms while that attribute is there.
   A part is only ever swapped into an element already on the page: each template renders every
   live part (with the same id) in every state, and a part with no target is reported as an error. */
(function () {
  "use strict";
  var latest = {};
  var failures = 0;
  var FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";

  // CSRF tokens are masked afresh on every render; they do not make a form different.
  function comparable(html) {
    return html.replace(/ value="[^"]*"(?= name="csrfmiddlewaretoken")| name="csrfmiddlewaretoken" value="[^"]*"/g, "");
  }

  function swapPart(part) {
    var target = document.getElementById(part.id);
    if (!target) {
      // Every live part is on the page from its first render; one missing is a template's bug.
      console.error("live.js: no #" + part.id + " on the page for this live part");
      return;
    }
    var mode = part.getAttribute("data-live-part");
    if (mode === "append") {
      while (part.firstElementChild) target.appendChild(document.adoptNode(part.firstElementChild));
    } else if (mode === "text") {
      if (target.textContent !== part.textContent) target.textContent = part.textContent;
    } else if (mode === "attributes") {
      Array.prototype.slice.call(target.attributes).forEach(function (attribute) {
        if (!part.hasAttribute(attribute.name)) target.removeAttribute(attribute.name);
      });
      Array.prototype.forEach.call(part.attributes, function (attribute) {
        if (target.getAttribute(attribute.name) !== attribute.value) target.setAttribute(attribute.name, attribute.value);
      });
    } else {
      keepOpen(target, part);
      if (comparable(target.outerHTML) === comparable(part.outerHTML)) return;
      // The focus inside a replaced part goes to the element in the same place in its new markup.
      var place = Array.prototype.indexOf.call(target.querySelectorAll(FOCUSABLE), document.activeElement);
      target.replaceWith(document.adoptNode(part));
      var again = place >= 0 && part.querySelectorAll(FOCUSABLE)[place];
      if (again) again.focus({ preventScroll: true });
    }
  }

  // A <details> the user opened (the loss values' table) stays open across a swap: the server
  // renders it closed, and its open attribute must not count as a difference either.
  function keepOpen(target, part) {
    var opened = target.querySelectorAll("details");
    Array.prototype.forEach.call(part.querySelectorAll("details"), function (details, k) {
      if (opened[k]) details.open = opened[k].open;
    });
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var focusedId = document.activeElement && document.activeElement.id;
    Array.prototype.slice.call(doc.querySelectorAll("[data-live-part][id]")).forEach(swapPart);
    // A replaced focused element with an id (a button swapped whole): the new element of that id.
    if (focusedId && !document.body.contains(document.activeElement)) {
      var again = document.getElementById(focusedId);
      if (again) again.focus();
    }
    document.dispatchEvent(new CustomEvent("live:swapped"));
  }

  /* Fetch a fragment and swap it in; a response older than the latest request of the same
     ``key`` (default: the URL's path) is dropped. ``body`` (FormData) makes it a POST, e.g. a
     form whose answer is a fragment. */
  function load(url, body, key) {
    key = key || url.split("?")[0];
    var mine = latest[key] = (latest[key] || 0) + 1;
    var options = { credentials: "same-origin", cache: "no-store", headers: { Accept: "text/html", "X-Fragment": "1" } };
    if (body) {
      options.method = "POST";
      options.body = body;
    }
    return fetch(url, options)
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) { if (mine === latest[key]) swap(html); });
  }

  /* While the server does not answer (stopped, restarting, the network down), the page would go on
     showing "Running" and a frozen elapsed time as if all were well: after two failed polls in a row
     a notice says the page has stopped updating, and it goes as soon as a poll succeeds again. */
  var OFFLINE_AFTER = 2;

  function offlineNotice(show) {
    var notice = document.getElementById("live-offline");
    if (!show) {
      if (notice) notice.remove();
      return;
    }
    if (notice) return;
    notice = document.createElement("div");
    notice.id = "live-offline";
    notice.className = "message message-warning live-offline";
    notice.setAttribute("role", "status");
    document.body.appendChild(notice);
    // The text goes in after the (empty) status region is on the page, so that screen readers read it.
    window.setTimeout(function () {
      notice.textContent = "The server is not answering, so this page has stopped updating. " +
        "It will catch up by itself once the server is back.";
    }, 100);
  }

  function poll() {
    var poller = document.getElementById("live-poller");
    var url = poller && poller.getAttribute("data-live-url");
    if (!url) {
      offlineNotice(false);
      return;
    }
    var ms = parseInt(poller.getAttribute("data-live-ms"), 10) || 2000;
    load(url)
      .then(function () {
        failures = 0;
        offlineNotice(false);
        window.setTimeout(poll, ms);
      })
      .catch(function () {
        // Back off while the server is unreachable, but keep watching (at least every 10 s, so the
        // page catches up soon after the server is back).
        failures += 1;
        if (failures >= OFFLINE_AFTER) offlineNotice(true);
        window.setTimeout(poll, Math.min(10000, ms * Math.pow(2, failures)));
      });
  }

  window.styleGalleryLive = { load: load };
  window.setTimeout(poll, 300);
})();

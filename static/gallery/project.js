/* Style Gallery project page: sort the runs table by clicking its headers, and send the ticked
   runs to the compare page as ?runs=1,2,3. No dependencies. */
(function () {
  "use strict";
  var table = document.getElementById("runs-table");
  if (table) {
    var headers = Array.prototype.slice.call(table.querySelectorAll("th[data-sort]"));
    headers.forEach(function (header) {
      header.querySelector("button").addEventListener("click", function () {
        var column = Array.prototype.indexOf.call(header.parentNode.children, header);
        var ascending = header.getAttribute("aria-sort") !== "ascending";
        var numeric = header.getAttribute("data-sort") === "number";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[column].getAttribute("data-sort-value");
          var y = b.cells[column].getAttribute("data-sort-value");
          if (numeric) {
            x = parseFloat(x);
            y = parseFloat(y);
            // Rows without a value (no loss yet) go last either way.
            if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
            return ascending ? x - y : y - x;
          }
          return ascending ? x.localeCompare(y, undefined, { numeric: true }) : y.localeCompare(x, undefined, { numeric: true });
        });
        rows.forEach(function (row) { body.appendChild(row); });
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      });
    });
  }

  var form = document.getElementById("compare-form");
  var button = form && form.querySelector("[data-compare-button]");
  if (!button) return;
  var hint = form.querySelector("[data-compare-hint]");
  var least = parseInt(form.getAttribute("data-min"), 10);
  var most = parseInt(form.getAttribute("data-max"), 10);

  function ticked() {
    return Array.prototype.slice.call(form.querySelectorAll('input[name="runs"]:checked')).map(function (box) { return box.value; });
  }

  function refresh() {
    var count = ticked().length;
    button.disabled = count < least || count > most;
    button.textContent = count ? "Compare " + count + " runs" : "Compare selected";
    if (count > most) hint.textContent = "At most " + most + " runs at a time.";
    else if (count < least) hint.textContent = "Tick " + least + "–" + most + " runs to compare them side by side.";
    else hint.textContent = "";
  }

  form.addEventListener("change", refresh);
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    window.location.href = form.getAttribute("action") + "?runs=" + ticked().join(",");
  });
  refresh();
})();

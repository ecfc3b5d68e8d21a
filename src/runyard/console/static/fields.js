/* Runyard console, start-run form: an "Add row" button under each table of rows
   (requestListSource). Progressive enhancement only: without script every table already ends
   in a blank row, and a form posted with it works. */
"use strict";

(function () {

  /* Names and ids follow runyard/console/forms.py: custom.<name>.<row>.<param> and
     custom-<name>-<row>-<column>. */
  function addRow(table) {
    var body = table.tBodies[0];
    var last = body.rows[body.rows.length - 1];
    if (!last) { return; }
    var index = parseInt(last.getAttribute("data-row"), 10) + 1;
    var name = table.getAttribute("data-name");
    var idBase = table.getAttribute("data-id");
    var row = last.cloneNode(true);
    row.setAttribute("data-row", String(index));
    var inputs = row.querySelectorAll("input[data-param]");
    for (var i = 0; i < inputs.length; i++) {
      var input = inputs[i];
      var label = row.querySelector("label[for=\"" + input.id + "\"]");
      var id = idBase + "-" + index + "-" + i;
      input.id = id;
      input.name = name + "." + index + "." + input.getAttribute("data-param");
      input.value = "";
      /* A problem shown for the copied row is not one of the new row. */
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
      if (label) {
        label.htmlFor = id;
        label.textContent = label.getAttribute("data-title") + ", row " + (index + 1);
      }
    }
    body.appendChild(row);
    if (inputs.length) { inputs[0].focus(); }
  }

  function enhance(table) {
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = "Add row";
    button.addEventListener("click", function () { addRow(table); });
    var wrap = table.closest(".rows-table") || table;
    wrap.parentNode.insertBefore(button, wrap.nextSibling);
  }

  function init() {
    var tables = document.querySelectorAll("table[data-rows]");
    for (var i = 0; i < tables.length; i++) { enhance(tables[i]); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

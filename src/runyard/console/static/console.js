/* Runyard console: progressive enhancement only. Every page works without this file. */
"use strict";

(function () {

  function atBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 24;
  }

  function statusOf(el) {
    var badge = el.querySelector(".status");
    return badge ? badge.textContent : null;
  }

  /* A refreshed region is not a live region (its timings change every time): only a change
     of the run's status is announced, once. */
  function announce(el, before) {
    var now = statusOf(el);
    var out = document.querySelector("[data-announce-status]");
    if (out && now !== null && before !== null && now !== before) {
      out.textContent = "Run status: " + now;
    }
  }

  /* Elements with data-refresh re-fetch their content every data-every ms (a fragment of the
     page, named by data-fragment) until the fragment carries data-final. */
  function refresher(el) {
    var every = parseInt(el.getAttribute("data-every") || "3000", 10);
    var url = el.getAttribute("data-refresh");
    var fragment = el.getAttribute("data-fragment") || "1";
    var timer = null;
    function tick() {
      if (document.hidden) { timer = setTimeout(tick, every); return; }
      fetch(url, { headers: { "X-Runyard-Fragment": fragment }, credentials: "same-origin" })
        .then(function (r) {
          if (r.redirected || !r.ok) { throw new Error("status " + r.status); }
          return r.text();
        })
        .then(function (html) {
          var log = el.querySelector("pre.log");
          var follow = !log || atBottom(log);
          var focused = document.activeElement && el.contains(document.activeElement);
          var parsed = document.createElement("template");
          parsed.innerHTML = html;
          var final = parsed.content.querySelector("[data-final]") !== null;
          /* Never pull content from under the keyboard, unless the run has finished. */
          if (focused && !final) { timer = setTimeout(tick, every); return; }
          var before = statusOf(el);
          el.innerHTML = html;
          announce(el, before);
          var newLog = el.querySelector("pre.log");
          if (newLog && follow) { newLog.scrollTop = newLog.scrollHeight; }
          localTimes(el);
          if (final) {
            if (el.hasAttribute("data-reload-when-final")) {
              /* Fresh export fields and no more polling; a moment first for the announcement. */
              setTimeout(function () { window.location.reload(); }, 1000);
            }
            return;
          }
          timer = setTimeout(tick, every);
        })
        .catch(function () { timer = setTimeout(tick, every * 2); });
    }
    timer = setTimeout(tick, every);
    return timer;
  }

  /* <time datetime> shown in the reader's own time zone. */
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.title = t.textContent;
        t.textContent = d.toLocaleString();
      }
    });
  }

  /* The export form answers in place: the download link appears under the button. */
  function exportForm(form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var out = form.querySelector(".download");
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      out.textContent = "Preparing the link…";
      fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" },
        credentials: "same-origin"
      })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          out.textContent = "";
          if (data.problem) { out.textContent = data.problem; return; }
          var a = document.createElement("a");
          a.href = data.download_url;
          a.setAttribute("download", "");
          a.textContent = "Download " + form.querySelector("[name=format]").value.toUpperCase();
          out.appendChild(a);
          a.focus();
        })
        .catch(function () { out.textContent = "The link could not be made; try again."; })
        .finally(function () { button.disabled = false; });
    });
    var format = form.querySelector("[name=format]");
    var csv = form.querySelector(".csv-only");
    function toggle() { if (csv) { csv.hidden = format.value !== "csv"; } }
    format.addEventListener("change", toggle);
    toggle();
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("[data-refresh]").forEach(refresher);
    document.querySelectorAll("form[data-export]").forEach(exportForm);
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (s) {
      s.addEventListener("change", function () { s.form.submit(); });
    });
    document.querySelectorAll("[data-check-all],[data-check-none]").forEach(function (b) {
      b.addEventListener("click", function () {
        var name = b.getAttribute("data-check-all") || b.getAttribute("data-check-none");
        var on = b.hasAttribute("data-check-all");
        b.form.querySelectorAll("input[type=checkbox][name=" + name + "]").forEach(function (c) {
          c.checked = on;
        });
      });
    });
    document.querySelectorAll("pre.log").forEach(function (p) { p.scrollTop = p.scrollHeight; });
  });
})();

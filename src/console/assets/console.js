// Switchyard Console: progressive enhancement only; every page works without this file.
(function () {
  "use strict";
  // Copy buttons: <button data-copy="input-id">.
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button[data-copy]");
    if (!b) return;
    var input = document.getElementById(b.getAttribute("data-copy"));
    if (!input) return;
    var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { input.select(); document.execCommand("copy"); done(); });
    } else { input.select(); document.execCommand("copy"); done(); }
  });
  // Selects that apply on change (period pickers).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (s) {
    s.addEventListener("change", function () { s.form.submit(); });
  });
  // Model Catalog: filter as you type (name), by provider(s) and status.
  var table = document.getElementById("models");
  var form = document.getElementById("model-filters");
  if (table && form) {
    var q = form.querySelector("#q"), prov = form.querySelector("#provider"), st = form.querySelector("#status");
    var group = form.querySelector("#group");
    var count = document.getElementById("model-count");
    var apply = function () {
      var text = q.value.trim().toLowerCase();
      var chosen = Array.prototype.filter.call(prov.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
      var n = 0;
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        var show = (!text || tr.dataset.name.indexOf(text) >= 0) &&
          (!chosen.length || chosen.indexOf(tr.dataset.provider) >= 0) &&
          (!st.value || st.value === tr.dataset.status) &&
          !(group && group.checked && tr.dataset.snapshotOf !== undefined);
        tr.hidden = !show;
        if (show) n++;
      });
      if (count) count.textContent = n + " models";
    };
    q.addEventListener("input", apply); prov.addEventListener("change", apply); st.addEventListener("change", apply);
    if (group) group.addEventListener("change", apply);
  }
  // Key page, Rate limit: slider and number field in step; the section toggle enables the three
  // limits (the server ignores them when it is off either way).
  document.querySelectorAll("input[data-mirror]").forEach(function (input) {
    input.addEventListener("input", function () {
      var other = document.getElementById(input.getAttribute("data-mirror"));
      if (other) other.value = input.value;
    });
  });
  var rlOn = document.getElementById("rl-enabled"), rlSet = document.getElementById("rl-limits");
  if (rlOn && rlSet) {
    var sync = function () { rlSet.disabled = !rlOn.checked; };
    rlOn.addEventListener("change", sync); sync();
  }
  // Key page, Routing form: rule rows only under the rules strategy; spare rows behind "+ Add".
  var rf = document.getElementById("routing-form");
  if (rf) {
    var showStrategy = function () {
      var picked = rf.querySelector("input[name=strategy]:checked");
      rf.querySelectorAll("[data-strategy-only]").forEach(function (el) {
        el.hidden = !picked || picked.value !== el.getAttribute("data-strategy-only");
      });
    };
    rf.querySelectorAll("input[name=strategy]").forEach(function (r) { r.addEventListener("change", showStrategy); });
    showStrategy();
    rf.querySelectorAll("button[data-add-row]").forEach(function (b) {
      var rows = rf.querySelectorAll("table." + b.getAttribute("data-add-row") + " tr.spare");
      rows.forEach(function (tr) { tr.hidden = true; });
      b.hidden = rows.length === 0;
      b.addEventListener("click", function () {
        var next = rf.querySelector("table." + b.getAttribute("data-add-row") + " tr.spare[hidden]");
        if (next) { next.hidden = false; var f = next.querySelector("select, input"); if (f) f.focus(); }
        b.hidden = !rf.querySelector("table." + b.getAttribute("data-add-row") + " tr.spare[hidden]");
      });
    });
  }
  // Request Logs: /console/logs#req_… opens that row.
  if (location.hash.length > 1) {
    var d = document.querySelector('details[data-request-id="' + CSS.escape(location.hash.slice(1)) + '"]');
    if (d) { d.open = true; d.scrollIntoView(); d.querySelector("summary").focus(); }
  }
})();

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
    var count = document.getElementById("model-count");
    var apply = function () {
      var text = q.value.trim().toLowerCase();
      var chosen = Array.prototype.filter.call(prov.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
      var n = 0;
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        var show = (!text || tr.dataset.name.indexOf(text) >= 0) &&
          (!chosen.length || chosen.indexOf(tr.dataset.provider) >= 0) &&
          (!st.value || st.value === tr.dataset.status);
        tr.hidden = !show;
        if (show) n++;
      });
      if (count) count.textContent = n + " models";
    };
    q.addEventListener("input", apply); prov.addEventListener("change", apply); st.addEventListener("change", apply);
  }
  // Request Logs: /console/logs#req_… opens that row.
  if (location.hash.length > 1) {
    var d = document.querySelector('details[data-request-id="' + CSS.escape(location.hash.slice(1)) + '"]');
    if (d) { d.open = true; d.scrollIntoView(); d.querySelector("summary").focus(); }
  }
})();

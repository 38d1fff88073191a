/* Inline child rows and reference pickers for the generated forms. No network beyond this server. */
(function ($) {
  "use strict";
  $(document).on("click", ".danbao-add-row", function () {
    var child = $(this).data("child");
    var table = $("#children-" + child);
    var next = parseInt($(this).attr("data-next"), 10);
    var row = table.find("tr.danbao-template").clone().removeClass("danbao-template hidden").addClass("danbao-row");
    row.find("[name]").each(function () { this.name = this.name.replace("__i__", next); this.id = (this.id || "").replace("__i__", next); });
    row.append('<input type="hidden" name="' + child + "-" + next + '-id" value="">');
    table.find("tbody").append(row);
    $(this).attr("data-next", next + 1);
    initPickers(row);
  });
  $(document).on("click", ".danbao-remove-row", function () { $(this).closest("tr").remove(); });
  function initPickers(scope) {
    if (!$.fn.select2) { return; }
    $(scope).find("select.danbao-select2").select2({ allowClear: true, placeholder: "" });
  }
  $(function () { initPickers($("#record-form").not(".danbao-template")); });
})(jQuery);

/* Live conditions on the form (visible_if / required_if / readonly_if). The
   expressions were checked on the server and translated by web/exprjs.py; the
   server enforces them again on save. The None rule matches danbao.expr. */
var DanbaoExpr = (function () {
  "use strict";
  function isNull(x) { return x === null || x === undefined; }
  function iso(d) { return d.toISOString().slice(0, 10); }
  function parse(s) { var p = s.split("-"); return new Date(Date.UTC(+p[0], +p[1] - 1, +p[2])); }
  var fns = {
    today: function () { return DanbaoExpr.today; },
    days_between: function (a, b) { return isNull(a) || isNull(b) ? null : Math.round((parse(b.slice(0, 10)) - parse(a.slice(0, 10))) / 86400000); },
    add_days: function (d, n) { if (isNull(d) || isNull(n)) { return null; } var x = parse(d.slice(0, 10)); x.setUTCDate(x.getUTCDate() + n); return iso(x); },
    add_months: function (d, n) {
      if (isNull(d) || isNull(n)) { return null; }
      var x = parse(d.slice(0, 10)), m = x.getUTCMonth() + n, y = x.getUTCFullYear() + Math.floor(m / 12);
      m = ((m % 12) + 12) % 12;
      var last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
      return iso(new Date(Date.UTC(y, m, Math.min(x.getUTCDate(), last))));
    },
    round_money: function (x) { return isNull(x) ? null : Math.sign(x) * Math.round(Math.abs(x) * 100) / 100; },
    min: function () { var a = [].slice.call(arguments); return a.some(isNull) ? null : Math.min.apply(null, a); },
    max: function () { var a = [].slice.call(arguments); return a.some(isNull) ? null : Math.max.apply(null, a); },
    abs: function (x) { return isNull(x) ? null : Math.abs(x); },
    coalesce: function () { for (var i = 0; i < arguments.length; i++) { if (!isNull(arguments[i])) { return arguments[i]; } } return null; },
    date: function (y, m, d) { return iso(new Date(Date.UTC(y, m - 1, d))); }
  };
  return {
    today: new Date().toISOString().slice(0, 10),
    t: function (x) { return x === true; },
    isnull: function (x) { return isNull(x); },
    op: function (o, a, b) {
      if (isNull(a) || isNull(b)) { return null; }
      switch (o) {
        case "+": return a + b;
        case "-": return a - b;
        case "*": return a * b;
        case "/": return b === 0 ? null : a / b;
        case "//": return b === 0 ? null : Math.trunc(a / b);
        case "%": return b === 0 ? null : a - b * Math.trunc(a / b);
        case "**": return Math.pow(a, b);
      }
      return null;
    },
    cmp: function (o, a, b) {
      if (isNull(a) || isNull(b)) { return false; }
      if (o === "==") { return a === b; }
      if (o === "!=") { return a !== b; }
      switch (o) {
        case "in": return b.indexOf(a) >= 0;
        case "not in": return b.indexOf(a) < 0;
        case "<": return a < b;
        case "<=": return a <= b;
        case ">": return a > b;
        case ">=": return a >= b;
      }
      return false;
    },
    call: function (name, args) { return fns[name].apply(null, args); }
  };
}());

(function ($) {
  "use strict";
  var NUMERIC = { integer: 1, decimal: 1, money: 1, rate: 1, reference: 1 };
  function setup() {
    var rulesEl = document.getElementById("danbao-rules");
    if (!rulesEl) { return; }
    var spec = JSON.parse(rulesEl.textContent);
    DanbaoExpr.today = spec.today;
    var form = $("#record-form");
    function v(name) {
      var type = spec.types[name];
      var inputs = form.find("[name='" + name + "']");
      if (!inputs.length) { return null; }
      if (type === "boolean") { return inputs.filter("[type=checkbox]").prop("checked"); }
      var raw = $.trim(inputs.last().val() || "");
      if (raw === "") { return null; }
      if (NUMERIC[type]) { var n = parseFloat(raw.replace(/[,，]/g, "")); return isNaN(n) ? null : n; }
      return raw;
    }
    var checks = spec.rules.map(function (r) {
      /* generated by web/exprjs.py from a checked expression */
      return { rule: r, fn: new Function("v", "D", "return " + r.js + ";") };
    });
    function apply() {
      checks.forEach(function (c) {
        var on;
        try { on = c.fn(v, DanbaoExpr) === true; } catch (e) { on = false; }
        var r = c.rule;
        var box = r.target.indexOf("section-") === 0 ? $("#" + r.target) : form.find("[data-field='" + r.target + "']");
        if (r.kind === "visible_if") { box.toggleClass("hidden", !on); }
        if (r.kind === "required_if") { box.find(".danbao-req-if").toggleClass("hidden", !on); }
        if (r.kind === "readonly_if") { box.find("input, select, textarea").prop("readonly", on).toggleClass("danbao-locked", on); }
      });
    }
    form.on("input change", apply);
    apply();
  }
  $(setup);
})(jQuery);

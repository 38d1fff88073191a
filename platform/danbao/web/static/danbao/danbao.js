/* Inline child rows and reference pickers for the generated forms. No network beyond this server.
   A children field is a table (small children) or stacked blocks (one per row); either way
   each row is a .danbao-row with data-row = its index i in the input names
   ({children field}-{i}-{field}), and the hidden .danbao-template is copied for a new row. */
(function ($) {
  "use strict";
  $(document).on("click", ".danbao-add-row", function () {
    var child = $(this).data("child");
    var box = $("#children-" + child);
    var next = parseInt($(this).attr("data-next"), 10);
    var row = box.find(".danbao-template").first().clone().removeClass("danbao-template hidden").addClass("danbao-row");
    row.attr("data-row", next);
    row.find("[name]").each(function () { this.name = this.name.replace("__i__", next); });
    row.find("[id]").each(function () { this.id = this.id.replace("__i__", next); });
    row.find("label[for]").each(function () { this.htmlFor = this.htmlFor.replace("__i__", next); });
    (row.is("tr") ? row.children("td").last() : row).append('<input type="hidden" name="' + child + "-" + next + '-id" value="">');
    box.find(".danbao-rows").first().append(row);
    row.find(".danbao-block-no").text(row.parent().children(".danbao-row").length);
    $(this).attr("data-next", next + 1);
    initPickers(row);
    row.trigger("danbao:row");     /* the row's own conditions (below) apply at once */
  });
  $(document).on("click", ".danbao-remove-row", function () { $(this).closest(".danbao-row").remove(); });
  function initPickers(scope) {
    if (!$.fn.select2) { return; }
    /* never the add-row template: a copied select2 would be dead */
    $(scope).find("select.danbao-select2").filter(function () { return !$(this).closest(".danbao-template").length; })
      .select2({ allowClear: true, placeholder: "", width: "100%" });
  }
  $(function () { initPickers($("#record-form")); });
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
  /* the value of a field from its inputs, typed as the expressions expect */
  function read(inputs, type) {
    if (!inputs.length) { return null; }
    if (type === "boolean") { return inputs.filter("[type=checkbox]").prop("checked"); }
    var raw = $.trim(inputs.last().val() || "");
    if (raw === "") { return null; }
    if (NUMERIC[type]) {
      var text = raw.replace(/[,，\s]/g, ""), percent = type === "rate" && /[%％]$/.test(text);
      var n = parseFloat(percent ? text.slice(0, -1) : text);   /* a rate may be typed as 1.8% */
      return isNaN(n) ? null : (percent ? n / 100 : n);
    }
    return raw;
  }
  function compile(rules) {
    return rules.map(function (r) {
      /* generated by web/exprjs.py from a checked expression */
      return { rule: r, fn: new Function("v", "D", "return " + r.js + ";") };
    });
  }
  function holds(c, v) {
    try { return c.fn(v, DanbaoExpr) === true; } catch (e) { return false; }
  }
  function setup() {
    var rulesEl = document.getElementById("danbao-rules");
    if (!rulesEl) { return; }
    var spec = JSON.parse(rulesEl.textContent);
    DanbaoExpr.today = spec.today;
    var form = $("#record-form");
    function v(name) { return read(form.find("[name='" + name + "']"), spec.types[name]); }
    var checks = compile(spec.rules);
    var children = spec.children || {};
    var rowChecks = {};
    Object.keys(children).forEach(function (child) { rowChecks[child] = compile(children[child].rules); });
    /* one child row: its entity's conditions over its own inputs; a field shows only
       when all of its visible_if rules hold (a child section's rule is one of them) */
    function applyRow(child, row) {
      var types = children[child].types, prefix = child + "-" + row.attr("data-row") + "-";
      function rv(name) { return read(row.find("[name='" + prefix + name + "']"), types[name]); }
      var shown = {}, required = {}, locked = {};
      rowChecks[child].forEach(function (c) {
        var on = holds(c, rv), target = c.rule.target;
        if (c.rule.kind === "visible_if") { shown[target] = shown[target] !== false && on; }
        if (c.rule.kind === "required_if") { required[target] = on; }
        if (c.rule.kind === "readonly_if") { locked[target] = on; }
      });
      function cell(target) { return row.find("[data-cfield='" + target + "']"); }
      Object.keys(shown).forEach(function (t) { cell(t).toggleClass("hidden", !shown[t]); });
      Object.keys(required).forEach(function (t) { cell(t).find(".danbao-req-if").toggleClass("hidden", !required[t]); });
      Object.keys(locked).forEach(function (t) {
        cell(t).find("input, select, textarea").prop("readonly", locked[t]).toggleClass("danbao-locked", locked[t]);
      });
    }
    function apply() {
      checks.forEach(function (c) {
        var on = holds(c, v);
        var r = c.rule;
        var box = r.target.indexOf("section-") === 0 ? $("#" + r.target) : form.find("[data-field='" + r.target + "']");
        if (r.kind === "visible_if") { box.toggleClass("hidden", !on); }
        if (r.kind === "required_if") { box.find(".danbao-req-if").toggleClass("hidden", !on); }
        if (r.kind === "readonly_if") { box.find("input, select, textarea").prop("readonly", on).toggleClass("danbao-locked", on); }
      });
      Object.keys(rowChecks).forEach(function (child) {
        form.find(".danbao-children[data-child='" + child + "'] .danbao-row").each(function () { applyRow(child, $(this)); });
      });
    }
    form.on("input change danbao:row", apply);
    apply();
  }
  $(setup);
})(jQuery);

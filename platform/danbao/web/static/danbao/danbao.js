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

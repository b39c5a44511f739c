// The exported catalog's search (no server to ask): the same rule as the server's
// (featurehouse/ui/catalog.py, CatalogIndex.search): every word of the query, lowercased, must appear in
// the feature's own text or in its view's. A browser test holds both to the same results.
(function () {
  var index = window.FH_INDEX;
  var table = document.getElementById("results");
  if (!index || !table) { return; }
  var query = new URLSearchParams(window.location.search).get("q") || "";
  var box = document.getElementById("q");
  if (box) { box.value = query; }
  var words = query.toLowerCase().split(/\s+/).filter(function (w) { return w.length > 0; });
  if (!words.length) { return; }
  var views = Object.keys(index.views).sort().filter(function (name) {
    return words.every(function (w) { return index.views[name].text.indexOf(w) >= 0; });
  });
  var list = document.getElementById("view-results");
  views.forEach(function (name) {
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.href = "views/" + encodeURIComponent(name) + ".html";
    link.textContent = name;
    item.appendChild(link);
    list.appendChild(item);
  });
  document.getElementById("views-section").hidden = views.length === 0;
  var hits = index.features.filter(function (f) {
    var view = index.views[f[0]];
    return words.every(function (w) { return f[4].indexOf(w) >= 0 || view.text.indexOf(w) >= 0; });
  });
  var body = table.querySelector("tbody");
  hits.forEach(function (f) {
    var view = index.views[f[0]];
    var row = document.createElement("tr");
    var head = document.createElement("th");
    head.scope = "row";
    var link = document.createElement("a");
    link.href = "views/" + encodeURIComponent(f[0]) + ".html#f-" + f[1];
    link.textContent = f[0] + "." + f[1];
    head.appendChild(link);
    row.appendChild(head);
    [f[2], view.entity, view.owner, f[3]].forEach(function (text, i) {
      var cell = document.createElement("td");
      if (i === 0) { var code = document.createElement("code"); code.textContent = text; cell.appendChild(code); }
      else { cell.textContent = text; }
      row.appendChild(cell);
    });
    body.appendChild(row);
  });
  document.getElementById("search-heading").textContent = "Features matching \u201c" + query + "\u201d";
  document.getElementById("result-count").textContent = hits.length + (hits.length === 1 ? " feature" : " features");
  table.hidden = hits.length === 0;
}());

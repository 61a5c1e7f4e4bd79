/* Roadwatch staff web app: maps (Leaflet, vendored) and small enhancements. The pages work without it. */
(function () {
  "use strict";

  document.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });
  document.querySelectorAll("[data-print]").forEach(function (el) {
    el.hidden = false;
    el.addEventListener("click", function () { window.print(); });
  });

  var el = document.getElementById("map");
  if (!el || typeof L === "undefined") { return; }

  var msg = JSON.parse(el.dataset.messages || "{}");
  function text(key, values) {
    var s = msg[key] || key;
    Object.keys(values || {}).forEach(function (k) { s = s.split("{" + k + "}").join(values[k]); });
    return s;
  }
  function status(message) {
    var out = document.getElementById("map-status");
    if (out) { out.textContent = message; }
  }
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  var printing = document.body.classList.contains("print-page");
  var map = L.map(el, { zoomControl: false, maxZoom: 19, zoomSnap: printing ? 0.25 : 1 });
  L.control.zoom({ zoomInTitle: text("zoom_in"), zoomOutTitle: text("zoom_out") }).addTo(map);
  if (el.dataset.tileUrl) {
    L.tileLayer(el.dataset.tileUrl, { maxZoom: 19, attribution: el.dataset.tileAttribution || "" }).addTo(map);
  }
  map.setView([51.16, 10.45], 6); // Germany, until the sites are known
  map.on("popupopen", function (e) {
    var close = e.popup.getElement().querySelector(".leaflet-popup-close-button");
    if (close) { close.setAttribute("aria-label", text("close_popup")); }
  });

  function marker(feature, number) {
    var p = feature.properties;
    var c = feature.geometry.coordinates;
    var label = (number ? number + ". " : "") + p.label;
    var icon = L.divIcon({
      className: "site-marker band-" + p.band + " st-" + p.status + (number ? " numbered" : ""),
      html: number ? '<span aria-hidden="true">' + number + "</span>" : "",
      iconSize: number ? [26, 26] : [22, 22],
    });
    var m = L.marker([c[1], c[0]], { icon: icon, title: label, alt: label, riseOnHover: true });
    m.band = p.band;
    if (p.url) {
      m.bindPopup('<a href="' + escapeHtml(p.url) + '">' + escapeHtml(text("open_site")) + "</a><br>" + escapeHtml(label));
    }
    return m;
  }

  var order = { high: 3, medium: 2, low: 1, closed: 0 };
  function clusterIcon(cluster) {
    var best = "closed";
    cluster.getAllChildMarkers().forEach(function (m) { if (order[m.band] > order[best]) { best = m.band; } });
    var n = cluster.getChildCount();
    return L.divIcon({
      className: "site-cluster band-" + best,
      html: '<span aria-hidden="true">' + n + '</span><span class="visually-hidden">' + escapeHtml(text("cluster", { n: n })) + "</span>",
      iconSize: [38, 38],
    });
  }

  function show(features, cluster, numbered) {
    var layer = cluster && L.markerClusterGroup
      ? L.markerClusterGroup({ iconCreateFunction: clusterIcon, showCoverageOnHover: false, maxClusterRadius: 50 })
      : L.featureGroup();
    features.forEach(function (f, i) { layer.addLayer(marker(f, numbered ? i + 1 : 0)); });
    layer.addTo(map);
    return layer;
  }

  function fit(layer) {
    var b = layer.getBounds();
    if (b.isValid()) { map.fitBounds(b.pad(0.15), { maxZoom: 17, animate: false }); }
  }

  // Vector tiles (Leaflet.VectorGrid, vendored, loaded only when a map draws tiles), with Leaflet 1.9 shims.
  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      if (L.vectorGrid) { resolve(); return; }
      var s = document.createElement("script");
      s.src = src;
      s.onload = resolve;
      s.onerror = reject;
      document.head.appendChild(s);
    });
  }
  function withVectorGrid() {
    return loadScript(el.dataset.vectorgrid).then(function () {
      // Leaflet 1.9 dropped L.DomEvent.fakeStop, which VectorGrid 1.3's canvas renderer calls on a click.
      if (!L.DomEvent.fakeStop) { L.DomEvent.fakeStop = function (ev) { ev._stopped = true; }; }
      // Leaflet 1.9 places a small circle's click at its getLatLng(), which a tile's point does not have
      // (it has only its tile pixel): without it the click's position is the mouse's.
      if (!L.VectorGrid.prototype._rwCreateLayer) {
        L.VectorGrid.prototype._rwCreateLayer = L.VectorGrid.prototype._createLayer;
        L.VectorGrid.prototype._createLayer = function (feat, pxPerExtent) {
          var layer = this._rwCreateLayer(feat, pxPerExtent);
          if (layer && !layer._latlng) { layer.getLatLng = undefined; }
          return layer;
        };
      }
    });
  }
  // The page's data-extent (west,south,east,north of what the filter selects): the tiled map fits it.
  function fitExtent() {
    var e = (el.dataset.extent || "").split(",").map(Number);
    if (e.length === 4 && e.every(isFinite)) {
      map.fitBounds(L.latLngBounds([e[1], e[0]], [e[3], e[2]]).pad(0.15), { maxZoom: 17, animate: false });
    }
  }
  function tiled() { return Boolean(el.dataset.vectorgrid) && Number(el.dataset.count) > Number(el.dataset.tilesAbove); }

  // The streets page: road sections as lines coloured by their grade class ("none": insufficient data).
  var GRADE_COLOURS = { "1.0": "#1f5fa8", "1.5": "#2e8b3c", "2.0": "#6aa84f", "2.5": "#c9b200", "3.0": "#e69138",
    "3.5": "#cc4125", "4.0": "#a61c00", "4.5": "#5b0f00" };
  // Or, switched, by the age of their last usable pass (service/api/coverage.py's classes; app.css .age-*),
  // "never surveyed" grey and dashed.
  var AGE_COLOURS = { "0-3 months": "#1b7837", "3-6 months": "#7fbc41", "6-12 months": "#e08214",
    "over 12 months": "#b2182b", "never": "#6b6b6b" };
  if (el.dataset.lines) {
    var mode = "grade";
    var styles = {
      grade: function (p) {
        var c = p.colour_class;
        return { color: c ? GRADE_COLOURS[c.split("-")[0]] : "#888", weight: 5, opacity: 0.9, dashArray: c ? null : "4 6" };
      },
      coverage: function (p) {
        var a = p.age_class || "never";
        return { color: AGE_COLOURS[a] || AGE_COLOURS.never, weight: 5, opacity: 0.9, dashArray: a === "never" ? "4 6" : null };
      },
    };
    var lines = null, grid = null;
    function setMode(m) {
      mode = styles[m] ? m : "grade";
      el.dataset.mode = mode;
      var legends = { grade: document.getElementById("legend-grade"), coverage: document.getElementById("legend-coverage") };
      Object.keys(legends).forEach(function (k) { if (legends[k]) { legends[k].hidden = k !== mode; } });
      if (lines) { lines.setStyle(function (f) { return styles[mode](f.properties); }); }
      if (grid) { delete el.dataset.drawn; grid.redraw(); } // the tiles again (kept by the browser), restyled
    }
    document.querySelectorAll('input[name="map-mode"]').forEach(function (input) {
      input.addEventListener("change", function () { if (input.checked) { setMode(input.value); } });
      if (input.checked) { mode = input.value; }
    });
    if (el.dataset.sectionTiles && tiled()) {
      sectionTiles(); // more sections than the threshold: the section tiles (service/api/tiles.py)
      return;
    }
    fetch(el.dataset.geojson, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) {
        lines = L.geoJSON(data, {
          style: function (f) { return styles[mode](f.properties); },
          onEachFeature: function (f, line) {
            var p = f.properties;
            line.options.className = "section-line sec-" + String(p.id).replace(/[^A-Za-z0-9_-]/g, "_");
            line.bindTooltip(function () { return escapeHtml(mode === "coverage" ? p.coverage_label || p.label : p.label); });
            line.bindPopup(function () {
              return '<a href="' + escapeHtml(p.url) + '">' + escapeHtml(p.label) + "</a><br>" + escapeHtml(p.coverage_label || "");
            });
          },
        }).addTo(map);
        fit(lines);
        setMode(mode);
        el.dataset.loaded = String(data.features.length);
      })
      .catch(function () { status(text("load_failed")); el.dataset.loaded = "error"; });
    return;
  }

  // The section tiles, with the page's filters, from their first zoom (below it a hint asks to zoom in); the
  // tiles carry id, name, from_name, to_name, grade, colour_class, last_usable_pass and age_class.
  function sectionTiles() {
    var lang = document.documentElement.lang || undefined;
    var labels = JSON.parse(el.dataset.labels || "{}");
    var minZoom = Number(el.dataset.minZoom) || 12;
    var hint = { n: Number(el.dataset.count).toLocaleString(lang), zoom: minZoom };
    function showHint() {
      var below = map.getZoom() < minZoom;
      el.dataset.zoomHint = below ? "1" : "";
      status(text(below ? "sections_zoom_in" : "sections_tiles_mode", hint));
    }
    fitExtent();
    map.on("zoomend", showHint);
    showHint();
    function name(p) {
      var ends = [p.from_name, p.to_name].filter(Boolean);
      return (p.name || p.id) + (ends.length ? " (" + ends.join(" – ") + ")" : "");
    }
    withVectorGrid().then(function () {
      var seen = {};
      grid = L.vectorGrid.protobuf(el.dataset.sectionTiles, {
        rendererFactory: L.canvas.tile,
        interactive: true,
        minZoom: minZoom,
        maxZoom: 19,
        fetchOptions: { credentials: "same-origin" },
        vectorTileLayerStyles: {
          sections: function (p) { seen[p.id] = true; return styles[mode](p); },
        },
      });
      grid.on("load", function () {
        el.dataset.loaded = "tiles";
        el.dataset.drawn = mode;
        el.dataset.tileFeatures = String(Object.keys(seen).length);
      });
      grid.on("click", function (ev) {
        var p = (ev.layer && ev.layer.properties) || {};
        if (!p.id) { return; }
        var grade = p.grade !== undefined && p.grade !== null
          ? Number(p.grade).toLocaleString(lang, { minimumFractionDigits: 1, maximumFractionDigits: 1 })
          : labels.no_grade || "";
        var last = p.last_usable_pass
          ? String(labels.last_pass || "").split("{date}").join(new Date(p.last_usable_pass).toLocaleDateString(lang))
          : labels.never || "";
        L.popup().setLatLng(ev.latlng).setContent('<a href="/streets/' + encodeURIComponent(p.id) + '">' +
          escapeHtml(name(p) + ": " + grade) + "</a><br>" + escapeHtml(name(p) + ": " + last)).openOn(map);
      });
      map.options.minZoom = map.getMinZoom(); // the tiles' first zoom is no limit of the map's (the hint is)
      grid.addTo(map);
      if (map.getZoom() < minZoom) { el.dataset.loaded = "tiles"; } // nothing to load until zoomed in
    }).catch(function () { status(text("load_failed")); el.dataset.loaded = "error"; });
  }

  // More sites than the list page's threshold: the same filters as vector tiles. Single sites from zoom 14
  // carry id, class, status and priority; below, groups carry their count, the highest priority of their
  // sites still to be dealt with and how many those are (coloured by it, grey when none; a click zooms in).
  function siteBand(p) {
    if (p.status === "rejected" || p.status === "repaired" || p.active === 0) { return "closed"; }
    return p.priority >= 70 ? "high" : p.priority >= 40 ? "medium" : "low";
  }
  function showTiles() {
    var labels = JSON.parse(el.dataset.labels || "{}");
    var css = getComputedStyle(document.documentElement);
    var colours = {};
    ["high", "medium", "low", "closed"].forEach(function (b) { colours[b] = css.getPropertyValue("--" + b).trim() || "#5a5a5a"; });
    if (rect) { map.fitBounds(rect.getBounds(), { animate: false }); } else { fitExtent(); }
    var lang = document.documentElement.lang || undefined;
    withVectorGrid().then(function () {
      var drawn = 0;
      var grid = L.vectorGrid.protobuf(el.dataset.siteTiles, {
        rendererFactory: L.canvas.tile,
        interactive: true,
        maxZoom: 19,
        fetchOptions: { credentials: "same-origin" },
        vectorTileLayerStyles: {
          sites: function (p) {
            drawn += 1;
            var n = p.count || 1;
            return { radius: n > 1 ? Math.min(7 + 2.5 * Math.log(n), 18) : 7, fill: true, fillColor: colours[siteBand(p)],
              fillOpacity: 0.9, color: "#fff", weight: 2, opacity: 1 };
          },
        },
      });
      grid.on("load", function () { el.dataset.loaded = "tiles"; el.dataset.tileFeatures = String(drawn); });
      grid.on("click", function (ev) {
        var p = (ev.layer && ev.layer.properties) || {};
        if (p.id) {
          var label = text("marker", {
            cls: (labels["class"] || {})[p["class"]] || p["class"],
            status: (labels.status || {})[p.status] || p.status,
            priority: Number(p.priority).toLocaleString(lang, { maximumFractionDigits: 0 }),
          });
          L.popup().setLatLng(ev.latlng).setContent('<a href="/sites/' + encodeURIComponent(p.id) + '">' +
            escapeHtml(text("open_site")) + "</a><br>" + escapeHtml(label)).openOn(map);
        } else {
          map.setView(ev.latlng, Math.min(map.getZoom() + 2, 19));
        }
      });
      grid.addTo(map);
      status(text("tiles_mode", { n: Number(el.dataset.count).toLocaleString(lang) }));
    }).catch(function () { status(text("load_failed")); el.dataset.loaded = "error"; });
  }

  // The list page: all filtered sites, clustered; an area can be drawn and put into the filter form.
  if (el.dataset.geojson !== undefined) {
    var bboxInput = document.getElementById("bbox");
    var rect = null;
    function setRect(bounds) {
      if (rect) { map.removeLayer(rect); rect = null; }
      if (bounds) { rect = L.rectangle(bounds, { color: "#0b3d66", weight: 2, fill: false, interactive: false }).addTo(map); }
    }
    function setBbox(bounds) {
      var v = [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()].map(function (x) { return x.toFixed(6); });
      bboxInput.value = v.join(",");
      setRect(bounds);
      status(text("area_set"));
    }
    var initial = (el.dataset.bbox || "").split(",").map(Number);
    if (initial.length === 4 && initial.every(isFinite)) {
      setRect(L.latLngBounds([initial[1], initial[0]], [initial[3], initial[2]]));
    }
    if (el.dataset.siteTiles && tiled()) {
      showTiles(); // a large selection: vector tiles, grouped at low zoom (service/api/tiles.py)
    } else {
      fetch(el.dataset.geojson, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (data) {
          var layer = show(data.features, true, false);
          if (rect) { map.fitBounds(rect.getBounds(), { animate: false }); } else { fit(layer); }
          el.dataset.loaded = String(data.features.length);
        })
        .catch(function () { status(text("load_failed")); el.dataset.loaded = "error"; });
    }

    var drawBtn = document.getElementById("draw-area");
    var drawing = false, start = null, preview = null;
    function stopDrawing(message) {
      drawing = false; start = null;
      if (preview) { map.removeLayer(preview); preview = null; }
      map.dragging.enable();
      el.classList.remove("drawing");
      drawBtn.setAttribute("aria-pressed", "false");
      if (message) { status(message); }
    }
    drawBtn.addEventListener("click", function () {
      if (drawing) { stopDrawing(text("draw_cancelled")); return; }
      drawing = true;
      map.dragging.disable();
      el.classList.add("drawing");
      drawBtn.setAttribute("aria-pressed", "true");
      status(text("draw_start"));
    });
    map.on("mousedown", function (e) {
      if (!drawing) { return; }
      start = e.latlng;
      preview = L.rectangle(L.latLngBounds(start, start), { color: "#0b3d66", weight: 2, dashArray: "4" }).addTo(map);
    });
    map.on("mousemove", function (e) {
      if (drawing && start && preview) { preview.setBounds(L.latLngBounds(start, e.latlng)); }
    });
    map.on("mouseup", function (e) {
      if (!drawing || !start) { return; }
      var bounds = L.latLngBounds(start, e.latlng);
      stopDrawing();
      if (bounds.getWest() < bounds.getEast() && bounds.getSouth() < bounds.getNorth()) { setBbox(bounds); }
    });
    document.addEventListener("keydown", function (e) {
      if (drawing && e.key === "Escape") { stopDrawing(text("draw_cancelled")); }
    });
    document.getElementById("use-view").addEventListener("click", function () { setBbox(map.getBounds()); });
    document.getElementById("clear-area").addEventListener("click", function () {
      bboxInput.value = ""; setRect(null); status(text("area_cleared"));
    });
  } else if (el.dataset.point) {
    // A site page: the site itself.
    var ll = el.dataset.point.split(",").map(Number);
    var feature = {
      geometry: { coordinates: [ll[1], ll[0]] },
      properties: { band: el.dataset.band, status: el.dataset.status, label: document.title.split(" – ")[0] },
    };
    show([feature], false, false);
    map.setView([ll[0], ll[1]], 18, { animate: false });
  } else if (el.dataset.features) {
    // A work order (page or print): numbered as in its table.
    var layer = show(JSON.parse(el.dataset.features).features, false, true);
    fit(layer);
  }
})();

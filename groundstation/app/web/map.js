// The ground station's map: Leaflet (and leaflet-geoman for drawing) driven by map_view.py.
//
// Python calls the functions of `window.bw` with JSON arguments it has built itself; the page
// calls back through the QWebChannel object `bridge`. Text that comes from files (zone names,
// alert messages) is only ever set as textContent, never parsed as HTML.
(function () {
  "use strict";

  const config = window.BW_CONFIG;
  const TRAIL_POINTS = config.trailPoints;
  const TRAIL_SPACING_M = 1.0;
  const DETECTION_LIFETIME_MS = config.detectionLifetimeS * 1000;
  const MAX_DETECTIONS = 500;
  // A 1×1 transparent GIF: a tile that fails to load leaves the plain background, not a broken image.
  const NO_TILE = "data:image/gif;base64,R0lGODlhAQABAAAAACH5BAEKAAEALAAAAAABAAEAAAICTAEAOw==";

  L.PM.setOptIn(true);
  const map = L.map("map", {
    zoomSnap: 0.25,
    maxZoom: 21,
    pmIgnore: false,
    attributionControl: true,
  });
  map.attributionControl.setPrefix("Leaflet");
  map.getContainer().style.background = config.background;
  map.setView(config.centre, config.zoom);
  L.control.scale({ imperial: false, position: "bottomleft" }).addTo(map);

  // Panes keep the stacking fixed whatever is redrawn last: zones under routes under trails.
  const panes = { zones: 380, routes: 400, trails: 410, detections: 420 };
  for (const [name, z] of Object.entries(panes)) {
    map.createPane(name).style.zIndex = String(z);
  }

  const layers = {
    zones: L.featureGroup().addTo(map),
    routes: L.featureGroup().addTo(map),
    vehicles: L.featureGroup().addTo(map),
    ais: L.featureGroup().addTo(map),
    detections: L.featureGroup().addTo(map),
    alerts: L.featureGroup().addTo(map),
  };
  L.control
    .layers(
      null,
      {
        Zones: layers.zones,
        Routes: layers.routes,
        Vehicles: layers.vehicles,
        Detections: layers.detections,
        Alerts: layers.alerts,
        "AIS vessels": layers.ais,
      },
      { collapsed: true, position: "topright" },
    )
    .addTo(map);

  // ---- the bridge to Python --------------------------------------------------------------
  let bridge = null;
  const beforeBridge = [];
  function send(method, ...args) {
    if (bridge) {
      bridge[method](...args);
    } else {
      beforeBridge.push([method, args]);
    }
  }

  // ---- small helpers ---------------------------------------------------------------------
  function textBlock(lines, className) {
    const div = document.createElement("div");
    if (className) div.className = className;
    lines.forEach(function (line, i) {
      const row = document.createElement("div");
      row.textContent = line;
      if (i === 0) row.className = "bw-title";
      div.appendChild(row);
    });
    return div;
  }

  function featureOf(layer) {
    if (layer instanceof L.Circle) {
      const c = layer.getLatLng();
      return {
        type: "Feature",
        properties: { radius_m: layer.getRadius() },
        geometry: { type: "Point", coordinates: [c.lng, c.lat] },
      };
    }
    const feature = layer.toGeoJSON(false);
    feature.properties = {};
    return feature;
  }

  // ---- mouse position --------------------------------------------------------------------
  const Coordinates = L.Control.extend({
    options: { position: "bottomright" },
    onAdd: function () {
      this._div = L.DomUtil.create("div", "bw-coords");
      return this._div;
    },
    show: function (latlng) {
      if (!latlng) {
        this._div.textContent = "";
        return;
      }
      const lat = `${Math.abs(latlng.lat).toFixed(5)}° ${latlng.lat >= 0 ? "N" : "S"}`;
      const lng = L.Util.wrapNum(latlng.lng, [-180, 180], true);
      this._div.textContent = `${lat}  ${Math.abs(lng).toFixed(5)}° ${lng >= 0 ? "E" : "W"}`;
    },
  });
  const coordinates = new Coordinates().addTo(map);
  map.on("mousemove", (e) => coordinates.show(e.latlng));
  map.on("mouseout", () => coordinates.show(null));

  // ---- tiles -----------------------------------------------------------------------------
  let tileLayer = null;
  const tileStats = { loaded: 0, errors: 0 };

  function setTiles(spec) {
    if (tileLayer) {
      map.removeLayer(tileLayer);
      tileLayer = null;
    }
    if (!spec) return;
    const options = { attribution: spec.attribution || "", maxZoom: 21, errorTileUrl: NO_TILE };
    if (spec.minNativeZoom !== null) options.minNativeZoom = spec.minNativeZoom;
    if (spec.maxNativeZoom !== null) options.maxNativeZoom = spec.maxNativeZoom;
    if (spec.bounds) options.bounds = spec.bounds;
    tileLayer = L.tileLayer(spec.url, options);
    // Leaflet reports the stand-in for a failed tile as loaded too.
    tileLayer.on("tileload", (e) => {
      if (e.tile.getAttribute("src") !== NO_TILE) tileStats.loaded++;
    });
    tileLayer.on("tileerror", () => tileStats.errors++);
    tileLayer.addTo(map);
  }

  // ---- zones -----------------------------------------------------------------------------
  const zones = new Map(); // zone index → layer

  function zoneLayer(zone) {
    const style = Object.assign({}, zone.style, { pmIgnore: !zone.editable });
    const parts = [];
    if (zone.circle) {
      parts.push(L.circle(zone.circle.center, Object.assign({ radius: zone.circle.radius, pane: "zones" }, style)));
    }
    if (zone.polygons.length) {
      parts.push(L.polygon(zone.polygons.length === 1 ? zone.polygons[0] : zone.polygons, Object.assign({ pane: "zones" }, style)));
    }
    if (zone.lines.length) {
      parts.push(L.polyline(zone.lines, Object.assign({ pane: "zones" }, style, { fill: false })));
    }
    for (const point of zone.points) {
      parts.push(L.circleMarker(point, Object.assign({ pane: "zones" }, zone.pointStyle || style)));
    }
    return parts.length === 1 ? parts[0] : L.featureGroup(parts);
  }

  function setSite(list, fitBounds) {
    layers.zones.clearLayers();
    zones.clear();
    for (const zone of list) {
      const layer = zoneLayer(zone);
      layer.bindTooltip(textBlock(zone.tooltip), { sticky: true });
      layer.on("click", function () {
        if (!map.pm.globalDrawModeEnabled()) send("zoneClicked", zone.index);
      });
      layer.addTo(layers.zones);
      zones.set(zone.index, layer);
      if (zone.editable && layer.pm) {
        layer.pm.enable({ allowSelfIntersection: false, draggable: false });
        layer.on("pm:edit", () => send("zoneEdited", zone.index, JSON.stringify(featureOf(layer))));
      }
    }
    if (fitBounds) map.fitBounds(fitBounds, { padding: [20, 20] });
  }

  // ---- routes ----------------------------------------------------------------------------
  function setRoutes(list) {
    layers.routes.clearLayers();
    for (const route of list) {
      if (route.startRadius !== null) {
        L.circleMarker(route.points[0], {
          pane: "routes",
          radius: route.startRadius,
          color: route.color,
          weight: 3,
          fill: false,
        })
          .bindTooltip(textBlock([`${route.group}: start`]), { sticky: true })
          .addTo(layers.routes);
      }
      L.polyline(route.points, { pane: "routes", color: route.color, weight: 3, opacity: 0.9 })
        .bindTooltip(textBlock(route.tooltip), { sticky: true })
        .addTo(layers.routes);
    }
  }

  // ---- vehicles --------------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";
  const vehicles = new Map(); // vehicle index → {marker, trail, state}

  function vehicleIcon(label) {
    const root = document.createElement("div");
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "-16 -16 32 32");
    svg.setAttribute("width", "32");
    svg.setAttribute("height", "32");
    svg.setAttribute("class", "bw-arrow");
    const arrow = document.createElementNS(SVG, "path");
    arrow.setAttribute("d", "M0,-14 L9,11 L0,5 L-9,11 Z");
    arrow.setAttribute("class", "bw-arrow-body");
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("r", "7");
    dot.setAttribute("class", "bw-arrow-dot");
    svg.appendChild(arrow);
    svg.appendChild(dot);
    const tag = document.createElement("span");
    tag.className = "bw-vehicle-label";
    tag.textContent = label;
    root.appendChild(svg);
    root.appendChild(tag);
    return L.divIcon({ html: root, className: "bw-vehicle", iconSize: [32, 32], iconAnchor: [16, 16] });
  }

  function applyVehicleLook(entry) {
    const element = entry.marker.getElement();
    if (!element) return;
    const s = entry.state;
    element.classList.toggle("lost", s.lost);
    element.classList.toggle("no-heading", s.heading === null);
    element.style.setProperty("--vehicle-color", s.lost ? config.lostColor : s.color);
    element.querySelector("svg").style.transform = `rotate(${s.heading || 0}deg)`;
  }

  function updateVehicles(list) {
    const seen = new Set();
    for (const v of list) {
      seen.add(v.id);
      let entry = vehicles.get(v.id);
      if (v.lat === null || v.lon === null) {
        if (entry) {
          entry.state = Object.assign({}, entry.state, { lost: v.lost });
          applyVehicleLook(entry);
        }
        continue;
      }
      const here = L.latLng(v.lat, v.lon);
      if (!entry) {
        entry = {
          marker: L.marker(here, { icon: vehicleIcon(v.label), zIndexOffset: 1000, keyboard: false }),
          // Dotted, so a trail never reads as the solid line of a planned route under it.
          trail: L.polyline([], {
            pane: "trails",
            color: v.color,
            weight: 4,
            opacity: 0.85,
            dashArray: "1 7",
            lineCap: "round",
            interactive: false,
          }),
          tooltip: "",
          state: v,
        };
        entry.marker.on("add", () => applyVehicleLook(entry));
        vehicles.set(v.id, entry);
      }
      entry.state = v;
      entry.marker.setLatLng(here);
      if (!layers.vehicles.hasLayer(entry.trail)) entry.trail.addTo(layers.vehicles);
      if (!layers.vehicles.hasLayer(entry.marker)) entry.marker.addTo(layers.vehicles);
      applyVehicleLook(entry);
      entry.trail.setStyle({ color: v.lost ? config.lostColor : v.color });
      const tooltip = v.tooltip.join("\n");
      if (tooltip !== entry.tooltip) {
        entry.tooltip = tooltip;
        entry.marker.unbindTooltip().bindTooltip(textBlock(v.tooltip), { direction: "right", offset: [14, 0] });
      }
      const points = entry.trail.getLatLngs();
      const last = points[points.length - 1];
      if (!last || map.distance(last, here) >= TRAIL_SPACING_M) {
        if (points.length >= TRAIL_POINTS) {
          points.splice(0, points.length - TRAIL_POINTS + 1);
          points.push(here);
          entry.trail.setLatLngs(points);
        } else {
          entry.trail.addLatLng(here);
        }
      }
    }
    // A vehicle that left the fleet loses its marker; its trail stays until the trails are cleared.
    for (const [id, entry] of vehicles) {
      if (!seen.has(id)) layers.vehicles.removeLayer(entry.marker);
    }
  }

  function clearTrails() {
    for (const entry of vehicles.values()) entry.trail.setLatLngs([]);
  }

  // ---- AIS targets -----------------------------------------------------------------------
  const aisTargets = new Map(); // MMSI → {marker, state, popup}

  function aisIcon() {
    const root = document.createElement("div");
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "-12 -12 24 24");
    svg.setAttribute("width", "24");
    svg.setAttribute("height", "24");
    // A hull seen from above, bow first: it reads as a ship, not as a drone's arrow or a detection's dot.
    const hull = document.createElementNS(SVG, "path");
    hull.setAttribute("d", "M0,-11 L5,-3 L5,9 L-5,9 L-5,-3 Z");
    hull.setAttribute("class", "bw-ais-hull");
    const still = document.createElementNS(SVG, "rect");
    still.setAttribute("x", "-5");
    still.setAttribute("y", "-5");
    still.setAttribute("width", "10");
    still.setAttribute("height", "10");
    still.setAttribute("transform", "rotate(45)");
    still.setAttribute("class", "bw-ais-still");
    svg.appendChild(hull);
    svg.appendChild(still);
    const tag = document.createElement("span");
    tag.className = "bw-ais-label";
    root.appendChild(svg);
    root.appendChild(tag);
    return L.divIcon({ html: root, className: "bw-ais", iconSize: [24, 24], iconAnchor: [12, 12] });
  }

  function applyAisLook(entry) {
    const element = entry.marker.getElement();
    if (!element) return;
    const t = entry.state;
    element.classList.toggle("no-heading", t.heading === null);
    element.classList.toggle("moving", t.moving);
    element.querySelector("svg").style.transform = `rotate(${t.heading || 0}deg)`;
    element.querySelector(".bw-ais-label").textContent = t.label;
  }

  function setAisTargets(list) {
    const seen = new Set();
    for (const t of list) {
      seen.add(t.mmsi);
      let entry = aisTargets.get(t.mmsi);
      if (!entry) {
        const marker = L.marker([t.lat, t.lon], { icon: aisIcon(), zIndexOffset: 200, keyboard: false });
        entry = { marker: marker, popup: "", state: t };
        entry.marker.on("add", () => applyAisLook(entry));
        entry.marker.addTo(layers.ais);
        aisTargets.set(t.mmsi, entry);
      }
      entry.state = t;
      entry.marker.setLatLng([t.lat, t.lon]);
      applyAisLook(entry);
      const popup = t.lines.join("\n");
      if (popup !== entry.popup) {
        entry.popup = popup;
        if (entry.marker.getPopup()) {
          entry.marker.setPopupContent(textBlock(t.lines, "bw-ais-popup"));
        } else {
          entry.marker.bindPopup(textBlock(t.lines, "bw-ais-popup"));
        }
      }
    }
    // A vessel that left the table (silent for too long) leaves the map with it.
    for (const [mmsi, entry] of aisTargets) {
      if (!seen.has(mmsi)) {
        layers.ais.removeLayer(entry.marker);
        aisTargets.delete(mmsi);
      }
    }
  }

  // ---- detections ------------------------------------------------------------------------
  const detections = new Map(); // key → {marker, seen, label}

  function addDetections(list) {
    const now = performance.now();
    for (const d of list) {
      let entry = detections.get(d.key);
      if (!entry) {
        entry = {
          marker: L.circleMarker([d.lat, d.lon], {
            pane: "detections",
            radius: 5,
            color: "#212121",
            weight: 1,
            fillColor: d.color,
            fillOpacity: 0.95,
          }),
        };
        entry.marker.addTo(layers.detections);
        detections.set(d.key, entry);
      } else {
        entry.marker.setLatLng([d.lat, d.lon]);
      }
      // A track AIS has bound keeps its vessel's name beside it; the tooltip follows what the track is now.
      const label = d.label || null;
      if (label !== entry.label || entry.tooltip === undefined) {
        entry.label = label;
        entry.tooltip = d.tooltip;
        entry.marker.unbindTooltip().unbindPopup();
        if (label) {
          // The name stays beside the dot; what the track is (class, confidence, camera) is a click away.
          entry.marker.bindTooltip(textBlock([label]), {
            permanent: true,
            direction: "right",
            offset: [6, 0],
            className: "bw-vessel-tooltip",
          });
          entry.marker.bindPopup(textBlock(d.tooltip));
        } else {
          entry.marker.bindTooltip(textBlock(d.tooltip));
        }
      }
      entry.seen = now;
      entry.marker.setStyle({ opacity: 1, fillOpacity: 0.95 });
    }
    while (detections.size > MAX_DETECTIONS) {
      const [key, oldest] = detections.entries().next().value;
      layers.detections.removeLayer(oldest.marker);
      detections.delete(key);
    }
  }

  // A detection fades as it ages and goes once nothing has refreshed it for the lifetime.
  setInterval(function () {
    const now = performance.now();
    for (const [key, entry] of detections) {
      const age = (now - entry.seen) / DETECTION_LIFETIME_MS;
      if (age >= 1) {
        layers.detections.removeLayer(entry.marker);
        detections.delete(key);
      } else if (age > 0.4) {
        const opacity = 1 - (age - 0.4) / 0.6;
        entry.marker.setStyle({ opacity: opacity, fillOpacity: 0.95 * opacity });
        const tooltip = entry.label ? entry.marker.getTooltip() : null;
        if (tooltip) tooltip.setOpacity(opacity);
      } else if (entry.label && entry.marker.getTooltip()) {
        entry.marker.getTooltip().setOpacity(0.9);
      }
    }
  }, 250);

  // ---- alerts ----------------------------------------------------------------------------
  const alerts = new Map(); // alert id → marker

  function addAlert(a) {
    let marker = alerts.get(a.id);
    if (marker) {
      marker.setLatLng([a.lat, a.lon]);
    } else {
      const pin = document.createElement("div");
      pin.className = "bw-alert-pin";
      const icon = L.divIcon({ html: pin, className: "bw-alert", iconSize: [22, 22], iconAnchor: [11, 11] });
      marker = L.marker([a.lat, a.lon], { icon: icon, zIndexOffset: 500, keyboard: false });
      marker.on("click", () => send("alertClicked", a.id));
      marker.addTo(layers.alerts);
      alerts.set(a.id, marker);
    }
    const pin = marker.options.icon.options.html;
    // An AIS alert (a dark vessel, a position nobody is at) is a black pin with its letter, ringed by severity.
    pin.textContent = a.mark || "!";
    pin.classList.toggle("ais", Boolean(a.mark));
    pin.style.background = a.mark ? "" : a.color;
    pin.style.borderColor = a.mark && !a.unverified ? a.color : "";
    pin.classList.toggle("unverified", Boolean(a.unverified));
    marker.unbindPopup().bindPopup(textBlock(a.lines, "bw-alert-popup"));
  }

  function clearAlerts() {
    layers.alerts.clearLayers();
    alerts.clear();
  }

  // ---- drawing ---------------------------------------------------------------------------
  const DRAW_STYLE = { color: config.drawColor, weight: 3, fillOpacity: 0.2 };

  function startDrawing(kind) {
    cancelDrawing();
    const shape = kind === "circle" ? "Circle" : "Polygon";
    map.pm.enableDraw(shape, {
      allowSelfIntersection: false,
      snappable: true,
      pathOptions: DRAW_STYLE,
      templineStyle: DRAW_STYLE,
      hintlineStyle: Object.assign({ dashArray: "5 5" }, DRAW_STYLE),
    });
  }

  function cancelDrawing() {
    map.pm.disableDraw();
  }

  map.on("pm:create", function (e) {
    const feature = featureOf(e.layer);
    // The drawing becomes a zone when the site model takes it and the site is drawn again.
    e.layer.remove();
    send("zoneDrawn", JSON.stringify(feature));
  });
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") cancelDrawing();
  });

  function centreOn(lat, lon, zoom) {
    map.setView([lat, lon], zoom === null ? map.getZoom() : zoom);
  }

  // What the tests ask the page; nothing in the app relies on it.
  const inspect = {
    zones: () =>
      Array.from(zones, ([index, layer]) => {
        const first = layer.getLayers ? layer.getLayers()[0] : layer;
        return {
          index: index,
          kind: first instanceof L.Circle ? "circle" : first instanceof L.CircleMarker ? "point" : first instanceof L.Polygon ? "polygon" : "line",
          color: first.options.color,
          fillColor: first.options.fill === false ? null : first.options.fillColor || first.options.color,
          dashArray: first.options.dashArray || null,
          editing: Boolean(first.pm && first.pm.enabled()),
        };
      }),
    zone: (index) => zones.get(index),
    routes: () =>
      layers.routes
        .getLayers()
        .filter((l) => !(l instanceof L.CircleMarker))
        .map((l) => ({ color: l.options.color, points: l.getLatLngs().length })),
    vehicle: function (id) {
      const entry = vehicles.get(id);
      if (!entry) return null;
      const element = entry.marker.getElement();
      const p = entry.marker.getLatLng();
      return {
        lat: p.lat,
        lon: p.lng,
        onMap: layers.vehicles.hasLayer(entry.marker),
        trail: entry.trail.getLatLngs().length,
        rotation: element ? element.querySelector("svg").style.transform : null,
        lost: element ? element.classList.contains("lost") : null,
        label: element ? element.querySelector(".bw-vehicle-label").textContent : null,
      };
    },
    detections: () => Array.from(detections.keys()),
    detection: function (key) {
      const entry = detections.get(key);
      if (!entry) return null;
      const tooltip = entry.marker.getTooltip();
      return {
        label: entry.label,
        permanent: Boolean(tooltip && tooltip.options.permanent),
        text: tooltip ? tooltip.getContent().textContent : null,
        popup: entry.marker.getPopup() ? Array.from(entry.marker.getPopup().getContent().children, (r) => r.textContent) : null,
      };
    },
    aisTargets: () => Array.from(aisTargets.keys()),
    aisTarget: function (mmsi) {
      const entry = aisTargets.get(mmsi);
      if (!entry) return null;
      const element = entry.marker.getElement();
      const p = entry.marker.getLatLng();
      const popup = entry.marker.getPopup();
      return {
        lat: p.lat,
        lon: p.lng,
        onMap: layers.ais.hasLayer(entry.marker),
        symbol: element ? element.classList.contains("bw-ais") && Boolean(element.querySelector(".bw-ais-hull")) : null,
        rotation: element ? element.querySelector("svg").style.transform : null,
        noHeading: element ? element.classList.contains("no-heading") : null,
        label: element ? element.querySelector(".bw-ais-label").textContent : null,
        popup: popup ? Array.from(popup.getContent().children, (row) => row.textContent) : null,
      };
    },
    alerts: () => Array.from(alerts.keys()),
    alert: (id) => alerts.get(id),
    alertPin: (id) => {
      const marker = alerts.get(id);
      if (!marker) return null;
      const pin = marker.options.icon.options.html;
      return {
        mark: pin.textContent,
        ais: pin.classList.contains("ais"),
        background: getComputedStyle(pin).backgroundColor,
        popup: Array.from(marker.getPopup().getContent().children, (row) => row.textContent),
      };
    },
    alertUnverified: (id) => {
      const marker = alerts.get(id);
      return marker ? marker.options.icon.options.html.classList.contains("unverified") : null;
    },
    tiles: () => Object.assign({ url: tileLayer ? tileLayer._url : null }, tileStats),
    point: (lat, lon) => map.latLngToContainerPoint([lat, lon]),
    drawing: () => map.pm.globalDrawModeEnabled(),
  };

  window.bw = {
    map: map,
    layers: layers,
    inspect: inspect,
    setTiles: setTiles,
    setSite: setSite,
    setRoutes: setRoutes,
    updateVehicles: updateVehicles,
    clearTrails: clearTrails,
    setAisTargets: setAisTargets,
    addDetections: addDetections,
    addAlert: addAlert,
    clearAlerts: clearAlerts,
    centreOn: centreOn,
    startDrawing: startDrawing,
    cancelDrawing: cancelDrawing,
  };

  if (typeof qt !== "undefined") {
    new QWebChannel(qt.webChannelTransport, function (channel) {
      bridge = channel.objects.bridge;
      for (const [method, args] of beforeBridge.splice(0)) bridge[method](...args);
      bridge.pageReady();
    });
  }
})();

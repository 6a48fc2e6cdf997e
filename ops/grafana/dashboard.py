#!/usr/bin/env python3
# Writes ops/grafana/meridian-dashboard.json (docs/monitoring.md): python3 ops/grafana/dashboard.py >
# ops/grafana/meridian-dashboard.json. The test suite checks that the two agree and that every
# query parses (tests/node/monitoring_test.cc). Every query joins meridian_node_info to name the
# region a node is, and filters on the $region variable.
import json
J = 'on (instance) group_left (region) meridian_node_info{region=~"$region"}'
def ts(title, targets, unit="short", desc="", stack=False):
    return {"type": "timeseries", "title": title, "description": desc,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "fieldConfig": {"defaults": {"unit": unit, "custom": {"stacking": {"mode": "normal" if stack else "none"}}}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi"}},
            "targets": [{"datasource": {"type": "prometheus", "uid": "${datasource}"}, "expr": e, "legendFormat": l, "refId": chr(65 + i)} for i, (e, l) in enumerate(targets)]}
rows = [
 ("Overview", [
  ts("Writes per second, by region", [(f'sum by (region) (rate(meridian_local_events_total[$__rate_interval]) * {J})', "{{region}}")], "wps",
     "Events written in each region (its own writes), per second."),
  ts("Peers connected", [(f'meridian_replication_peer_connected * {J}', "{{region}} ← {{peer}}")], "short",
     "1 while a region receives a peer's stream directly (docs/operations.md#replication-health)."),
  ts("Documents", [(f'meridian_documents * {J}', "{{region}}")], "short", "Documents that exist in each region: equal once converged."),
 ]),
 ("Replication", [
  ts("Replication lag, by pair", [(f'meridian_replication_lag_seconds * {J}', "{{origin}} → {{region}}")], "s",
     "How far the newest applied event of an origin is behind the newest one known (origin clock)."),
  ts("Visibility p50 and p99, by pair", [
     (f'histogram_quantile(0.99, sum by (region, origin, le) (rate(meridian_replication_visibility_seconds_bucket[$__rate_interval]) * {J}))', "p99 {{origin}} → {{region}}"),
     (f'histogram_quantile(0.5, sum by (region, origin, le) (rate(meridian_replication_visibility_seconds_bucket[$__rate_interval]) * {J}))', "p50 {{origin}} → {{region}}")], "s",
     "From a write in the origin to readable in the region (WAN delay included). SLO: p99 < 200 ms."),
  ts("Arrival p99, by pair", [
     (f'histogram_quantile(0.99, sum by (region, origin, le) (rate(meridian_replication_arrival_seconds_bucket[$__rate_interval]) * {J}))', "{{origin}} → {{region}}")], "s",
     "From a write in the origin to its batch arriving here, before the apply: against visibility, where the time goes."),
  ts("Events not yet applied, by pair", [(f'meridian_replication_lag_events * {J}', "{{origin}} → {{region}}")], "short"),
  ts("Replication bytes on the wire", [(f'sum by (region, peer, direction) (rate(meridian_replication_bytes_total{{form="wire"}}[$__rate_interval]) * {J})', "{{region}} {{direction}} {{peer}}")], "Bps"),
  ts("Reconnects and hedges per minute", [
     (f'sum by (region, peer) (rate(meridian_replication_reconnects_total[$__rate_interval]) * {J}) * 60', "reconnects {{region}} → {{peer}}"),
     (f'sum by (region, peer) (rate(meridian_replication_hedges_total[$__rate_interval]) * {J}) * 60', "hedges {{region}} → {{peer}}")], "short"),
  ts("Relays, retention, rebuilding, re-seeding", [
     (f'meridian_replication_relays_active * {J}', "relays {{region}}"),
     (f'meridian_replication_behind_retention * {J}', "behind {{peer}}'s retention: {{region}}"),
     (f'meridian_rebuilding * {J}', "rebuilding {{region}}"),
     (f'meridian_reseed_running * {J}', "re-seeding {{region}}")], "short"),
  ts("Re-seed progress", [
     (f'meridian_reseed_installed_documents * {J}', "installed {{region}}"),
     (f'meridian_reseed_snapshot_documents * {J}', "of the snapshot {{region}}")], "short"),
 ]),
 ("Integrity", [
  ts("Conflicts per second", [(f'sum by (region) (rate(meridian_conflicts_total[$__rate_interval]) * {J})', "{{region}}")], "short",
     "Concurrent writes merged deterministically (GET /v1/conflicts)."),
  ts("Verification: differing documents and repairs per hour", [
     (f'sum by (region, peer) (increase(meridian_verify_differing_documents_total[1h]) * {J})', "differing {{region}} vs {{peer}}"),
     (f'sum by (region, peer) (increase(meridian_repairs_total[1h]) * {J})', "repaired {{region}} from {{peer}}")], "short"),
  ts("Verification comparisons per hour, by result", [
     (f'sum by (region, result) (increase(meridian_verify_comparisons_total[1h]) * {J})', "{{region}} {{result}}")], "short"),
  ts("Damaged documents and dead letters", [
     (f'meridian_damaged_documents * {J}', "damaged {{region}}"),
     (f'increase(meridian_dead_letters_total[1h]) * {J}', "dead letters / h {{region}}")], "short"),
  ts("Clock skew events per hour", [(f'increase(meridian_clock_skew_events_total[1h]) * {J}', "{{region}}")], "short"),
 ]),
 ("Node", [
  ts("Write queue", [
     (f'meridian_write_queue_depth * {J}', "waiting {{region}}"),
     (f'meridian_write_queue_limit * {J}', "limit {{region}}")], "short"),
  ts("Commits per second and writes per commit", [
     (f'rate(meridian_fsyncs_total[$__rate_interval]) * {J}', "fsyncs/s {{region}}"),
     (f'(rate(meridian_write_batch_size_sum[$__rate_interval]) / rate(meridian_write_batch_size_count[$__rate_interval])) * {J}', "writes per commit {{region}}")], "short"),
  ts("HTTP requests per second, by route", [
     (f'sum by (region, route) (rate(meridian_http_requests_total[$__rate_interval]) * {J})', "{{region}} {{route}}")], "reqps"),
  ts("HTTP p99 latency, by route", [
     (f'histogram_quantile(0.99, sum by (region, route, le) (rate(meridian_http_request_duration_seconds_bucket[$__rate_interval]) * {J}))', "{{region}} {{route}}")], "s"),
  ts("Disk", [
     (f'meridian_data_dir_free_bytes * {J}', "free {{region}}"),
     (f'meridian_event_log_bytes * {J}', "event log {{region}}")], "bytes"),
  ts("Watches and connections", [
     (f'meridian_watchers * {J}', "watchers {{region}}"),
     (f'meridian_http_connections * {J}', "HTTP connections {{region}}")], "short"),
 ]),
]
panels = []
y = 0
pid = 1
for title, items in rows:
    panels.append({"type": "row", "title": title, "collapsed": False, "id": pid, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
    pid += 1; y += 1
    for i, p in enumerate(items):
        p["id"] = pid; pid += 1
        p["gridPos"] = {"h": 8, "w": 8, "x": (i % 3) * 8, "y": y + (i // 3) * 8}
        panels.append(p)
    y += ((len(items) + 2) // 3) * 8
dash = {
 "title": "Meridian",
 "uid": "meridian-overview",
 "description": "A Meridian deployment: regions, replication per pair, integrity, and each node (docs/monitoring.md).",
 "tags": ["meridian"],
 "timezone": "browser",
 "schemaVersion": 37,
 "version": 1,
 "refresh": "10s",
 "time": {"from": "now-1h", "to": "now"},
 "editable": True,
 "graphTooltip": 1,
 "annotations": {"list": []},
 "templating": {"list": [
   {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {}, "hide": 0},
   {"name": "region", "label": "Region", "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
    "query": {"query": "label_values(meridian_node_info, region)", "refId": "regions"},
    "definition": "label_values(meridian_node_info, region)", "refresh": 2, "multi": True, "includeAll": True,
    "allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1, "hide": 0}]},
 "panels": panels,
}
print(json.dumps(dash, indent=2, ensure_ascii=False))

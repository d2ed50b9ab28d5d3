package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descEntries     = prometheus.NewDesc("syncd_table_entries", "Connection entries held.", nil, nil)
	descByOrigin    = prometheus.NewDesc("syncd_table_entries_by_origin", "Connection entries held, by origin director.", []string{"origin"}, nil)
	descRejected    = prometheus.NewDesc("syncd_packets_rejected_total", "Datagrams rejected before reaching a peer's state, by reason.", []string{"reason"}, nil)
	descResults     = prometheus.NewDesc("syncd_upserts_total", "Entries offered to the table, by result.", []string{"result"}, nil)
	descSent        = prometheus.NewDesc("syncd_packets_sent_total", "Datagrams sent, by kind.", []string{"kind"}, nil)
	descSendErr     = prometheus.NewDesc("syncd_send_errors_total", "Datagrams the transport failed to send.", nil, nil)
	descExpired     = prometheus.NewDesc("syncd_entries_expired_total", "Entries removed by timeout.", nil, nil)
	descImportErr   = prometheus.NewDesc("syncd_backend_import_errors_total", "Backend import failures.", nil, nil)
	descReady       = prometheus.NewDesc("syncd_ready", "1 once the initial snapshot is complete.", nil, nil)
	descPeerRecv    = prometheus.NewDesc("syncd_peer_packets_received_total", "Data packets accepted from a peer.", []string{"peer"}, nil)
	descPeerEntries = prometheus.NewDesc("syncd_peer_entries_received_total", "Entries applied from a peer.", []string{"peer"}, nil)
	descPeerLost    = prometheus.NewDesc("syncd_peer_packets_lost_total", "Data packets from a peer given up as lost.", []string{"peer"}, nil)
	descPeerRetrans = prometheus.NewDesc("syncd_peer_packets_retransmitted_total", "Retransmitted data packets received from a peer.", []string{"peer"}, nil)
	descPeerAuth    = prometheus.NewDesc("syncd_peer_packets_rejected_auth_total", "Datagrams from a peer's address that passed authentication but could not be decoded.", []string{"peer"}, nil)
	descPeerReplay  = prometheus.NewDesc("syncd_peer_packets_rejected_replay_total", "Authentic datagrams from a peer rejected as replays, by verdict.", []string{"peer", "verdict"}, nil)
	descPeerLag     = prometheus.NewDesc("syncd_peer_lag_seconds", "Seconds since the newest packet from a peer.", []string{"peer"}, nil)
	descPeerMissing = prometheus.NewDesc("syncd_peer_missing_packets", "Data packets from a peer still awaited.", []string{"peer"}, nil)
)

// Describe implements prometheus.Collector.
func (d *Daemon) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEntries, descByOrigin, descRejected, descResults, descSent, descSendErr, descExpired,
		descImportErr, descReady, descPeerRecv, descPeerEntries, descPeerLost, descPeerRetrans, descPeerAuth, descPeerReplay, descPeerLag, descPeerMissing} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads the daemon's counters.
func (d *Daemon) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	c := d.core.Counters(d.now())
	sendErr, importErrs := d.sendErrs, d.importErrs
	d.mu.Unlock()
	g, ctr := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(descEntries, g, float64(c.Entries))
	for o, v := range c.ByOrigin {
		ch <- prometheus.MustNewConstMetric(descByOrigin, g, float64(v), o)
	}
	for r, v := range c.Rejected {
		ch <- prometheus.MustNewConstMetric(descRejected, ctr, float64(v), r)
	}
	for r, v := range c.Results {
		ch <- prometheus.MustNewConstMetric(descResults, ctr, float64(v), r)
	}
	ch <- prometheus.MustNewConstMetric(descSent, ctr, float64(c.SentData), "data")
	ch <- prometheus.MustNewConstMetric(descSent, ctr, float64(c.SentControl), "control")
	ch <- prometheus.MustNewConstMetric(descSent, ctr, float64(c.SentRetransmit), "retransmit")
	ch <- prometheus.MustNewConstMetric(descSendErr, ctr, float64(sendErr))
	ch <- prometheus.MustNewConstMetric(descExpired, ctr, float64(c.Expired))
	ch <- prometheus.MustNewConstMetric(descImportErr, ctr, float64(importErrs))
	ready := 0.0
	if c.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, g, ready)
	for _, p := range c.Peers {
		ch <- prometheus.MustNewConstMetric(descPeerRecv, ctr, float64(p.Accepted), p.ID)
		ch <- prometheus.MustNewConstMetric(descPeerEntries, ctr, float64(p.Entries), p.ID)
		ch <- prometheus.MustNewConstMetric(descPeerLost, ctr, float64(p.Lost), p.ID)
		ch <- prometheus.MustNewConstMetric(descPeerRetrans, ctr, float64(p.Retransmits), p.ID)
		ch <- prometheus.MustNewConstMetric(descPeerAuth, ctr, float64(p.Auth), p.ID)
		for v, x := range p.Replay {
			ch <- prometheus.MustNewConstMetric(descPeerReplay, ctr, float64(x), p.ID, v)
		}
		ch <- prometheus.MustNewConstMetric(descPeerLag, g, p.Lag.Seconds(), p.ID)
		ch <- prometheus.MustNewConstMetric(descPeerMissing, g, float64(p.Missing), p.ID)
	}
}

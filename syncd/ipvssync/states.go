package ipvssync

import "github.com/saru-lb/saru/syncd/conn"

// TCP states (IP_VS_TCP_S_*).
const (
	TCPNone        = 0
	TCPEstablished = 1
	TCPSynSent     = 2
	TCPSynRecv     = 3
	TCPFinWait     = 4
	TCPTimeWait    = 5
	TCPClose       = 6
	TCPCloseWait   = 7
	TCPLastAck     = 8
	TCPListen      = 9
	TCPSynAck      = 10
	TCPStateLast   = 11
)

// SCTPStateLast is IP_VS_SCTP_S_LAST (14 states, NONE to CLOSED).
const SCTPStateLast = 14

// Template states (IP_VS_CTPL_S_*).
const (
	TemplateNone    = 0
	TemplateAssured = 1
)

// The names the kernel prints in /proc/net/ip_vs_conn for each state
// (tcp_state_name_table, sctp_state_name_table, udp_state_name_table,
// ip_vs_ctpl_state_name_table).
var (
	tcpStateNames = [TCPStateLast]string{
		"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
		"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK",
	}
	sctpStateNames = [SCTPStateLast]string{
		"NONE", "INIT1", "INIT", "C-SENT", "C-REPLIED", "C-WAIT", "COOKIE",
		"C-ECHOED", "ESTABLISHED", "S-SENT", "S-RECEIVED", "S-ACK-SENT",
		"REJECTED", "CLOSED",
	}
	templateStateNames = [TemplateStateLast]string{"NONE", "ASSURED"}
)

// StateName returns the name the kernel prints for a state, or "" if the
// state is out of range.
func StateName(protocol uint8, template bool, state uint16) string {
	if template {
		if int(state) < len(templateStateNames) {
			return templateStateNames[state]
		}
		return ""
	}
	switch protocol {
	case conn.ProtoTCP:
		if int(state) < len(tcpStateNames) {
			return tcpStateNames[state]
		}
	case conn.ProtoSCTP:
		if int(state) < len(sctpStateNames) {
			return sctpStateNames[state]
		}
	case conn.ProtoUDP:
		if state == 0 {
			return "UDP"
		}
	case ProtoAH, ProtoESP:
		if state == 0 {
			return "NONE"
		}
	}
	return ""
}

// stateByName maps a printed state name back to its number.
func stateByName(protocol uint8, name string) (uint16, bool) {
	var table []string
	switch protocol {
	case conn.ProtoTCP:
		table = tcpStateNames[:]
	case conn.ProtoSCTP:
		table = sctpStateNames[:]
	case conn.ProtoUDP:
		table = []string{"UDP"}
	default:
		table = []string{"NONE"}
	}
	for i, n := range table {
		if n == name {
			return uint16(i), true
		}
	}
	return 0, false
}

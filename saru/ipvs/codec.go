package ipvs

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nlenc"
)

// Generic netlink commands and attributes, from include/uapi/linux/ip_vs.h.
const (
	familyName    = "IPVS"
	familyVersion = 1

	cmdNewService = 1
	cmdSetService = 2
	cmdDelService = 3
	cmdGetService = 4
	cmdNewDest    = 5
	cmdSetDest    = 6
	cmdDelDest    = 7
	cmdGetDest    = 8
	cmdNewDaemon  = 9
	cmdDelDaemon  = 10
	cmdGetDaemon  = 11
	cmdSetConfig  = 12
	cmdGetConfig  = 13
	cmdGetInfo    = 15
	cmdFlush      = 17

	cmdAttrService       = 1
	cmdAttrDest          = 2
	cmdAttrDaemon        = 3
	cmdAttrTimeoutTCP    = 4
	cmdAttrTimeoutTCPFin = 5
	cmdAttrTimeoutUDP    = 6

	svcAttrAF        = 1
	svcAttrProtocol  = 2
	svcAttrAddr      = 3
	svcAttrPort      = 4
	svcAttrFWMark    = 5
	svcAttrSchedName = 6
	svcAttrFlags     = 7
	svcAttrTimeout   = 8
	svcAttrNetmask   = 9
	svcAttrStats     = 10
	svcAttrPEName    = 11
	svcAttrStats64   = 12

	destAttrAddr         = 1
	destAttrPort         = 2
	destAttrFwdMethod    = 3
	destAttrWeight       = 4
	destAttrUThresh      = 5
	destAttrLThresh      = 6
	destAttrActiveConns  = 7
	destAttrInactConns   = 8
	destAttrPersistConns = 9
	destAttrStats        = 10
	destAttrAddrFamily   = 11
	destAttrStats64      = 12
	destAttrTunType      = 13
	destAttrTunPort      = 14
	destAttrTunFlags     = 15

	daemonAttrState      = 1
	daemonAttrMcastIfn   = 2
	daemonAttrSyncID     = 3
	daemonAttrSyncMaxLen = 4
	daemonAttrMcastGroup = 5
	daemonAttrMcastGrp6  = 6
	daemonAttrMcastPort  = 7
	daemonAttrMcastTTL   = 8

	statsAttrConns    = 1
	statsAttrInPkts   = 2
	statsAttrOutPkts  = 3
	statsAttrInBytes  = 4
	statsAttrOutBytes = 5
	statsAttrCPS      = 6
	statsAttrInPPS    = 7
	statsAttrOutPPS   = 8
	statsAttrInBPS    = 9
	statsAttrOutBPS   = 10

	infoAttrVersion     = 1
	infoAttrConnTabSize = 2

	// connFwdMask selects the forwarding method in a destination's flags.
	connFwdMask = 0x0007
)

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// addrBytes is the kernel's union nf_inet_addr: 16 bytes, IPv4 in the first 4.
func addrBytes(a netip.Addr) []byte {
	b := make([]byte, 16)
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
	} else {
		v := a.As16()
		copy(b, v[:])
	}
	return b
}

func parseAddr(f Family, b []byte) (netip.Addr, error) {
	switch f {
	case FamilyIPv4:
		if len(b) < 4 {
			return netip.Addr{}, fmt.Errorf("IPv4 address attribute of %d bytes", len(b))
		}
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case FamilyIPv6:
		if len(b) < 16 {
			return netip.Addr{}, fmt.Errorf("IPv6 address attribute of %d bytes", len(b))
		}
		return netip.AddrFrom16([16]byte(b[:16])), nil
	}
	return netip.Addr{}, fmt.Errorf("address of unknown family %d", f)
}

// netmaskBits returns the persistence netmask in prefix bits, defaulted.
func (s Service) netmaskBits() int {
	if s.NetmaskBits != 0 {
		return s.NetmaskBits
	}
	if s.family() == FamilyIPv6 {
		return 128
	}
	return 32
}

// encodeServiceID writes the attributes identifying a service.
func encodeServiceID(ae *netlink.AttributeEncoder, id ServiceID) {
	ae.Uint16(svcAttrAF, uint16(id.family()))
	if id.IsFWMark() {
		ae.Uint32(svcAttrFWMark, id.FWMark)
		return
	}
	ae.Uint16(svcAttrProtocol, uint16(id.Protocol))
	ae.Bytes(svcAttrAddr, addrBytes(id.Address.Addr()))
	ae.Bytes(svcAttrPort, be16(id.Address.Port()))
}

// encodeService writes a full service (for NEW and SET).
func encodeService(ae *netlink.AttributeEncoder, s Service) {
	encodeServiceID(ae, s.ServiceID)
	sched := s.Scheduler
	if sched == "" {
		sched = DefaultScheduler
	}
	ae.String(svcAttrSchedName, sched)
	if s.PEName != "" {
		ae.String(svcAttrPEName, s.PEName)
	}
	flags := s.Flags &^ (FlagHashed | FlagPersistent)
	if s.Timeout != 0 {
		flags |= FlagPersistent
	}
	fl := make([]byte, 8)
	nlenc.PutUint32(fl[:4], uint32(flags))
	nlenc.PutUint32(fl[4:], ^uint32(FlagHashed)) // mask: every flag but the kernel's own
	ae.Bytes(svcAttrFlags, fl)
	ae.Uint32(svcAttrTimeout, s.Timeout)
	if s.family() == FamilyIPv6 {
		ae.Uint32(svcAttrNetmask, uint32(s.netmaskBits()))
	} else {
		// An IPv4 netmask travels as a big-endian mask.
		ae.Bytes(svcAttrNetmask, binary.BigEndian.AppendUint32(nil, maskOf(s.netmaskBits())))
	}
}

func maskOf(bitsN int) uint32 {
	if bitsN <= 0 {
		return 0
	}
	return ^uint32(0) << (32 - bitsN)
}

// decodeService reads the attributes of a service.
func decodeService(ad *netlink.AttributeDecoder) (Service, error) {
	var s Service
	var addr []byte
	var port uint16
	var netmask []byte
	var stats, stats64 *Stats
	for ad.Next() {
		switch ad.Type() {
		case svcAttrAF:
			s.Family = Family(ad.Uint16())
		case svcAttrProtocol:
			// IP protocol numbers fit a byte; anything wider is not a
			// protocol IPVS balances and must not alias one.
			if p := ad.Uint16(); p <= 0xff {
				s.Protocol = Protocol(p)
			} else {
				return Service{}, fmt.Errorf("decode service: protocol %d is not an IP protocol", p)
			}
		case svcAttrAddr:
			addr = ad.Bytes()
		case svcAttrPort:
			if b := ad.Bytes(); len(b) == 2 {
				port = binary.BigEndian.Uint16(b)
			}
		case svcAttrFWMark:
			s.FWMark = ad.Uint32()
		case svcAttrSchedName:
			s.Scheduler = ad.String()
		case svcAttrPEName:
			s.PEName = ad.String()
		case svcAttrFlags:
			if b := ad.Bytes(); len(b) >= 4 {
				s.Flags = ServiceFlags(nlenc.Uint32(b[:4]))
			}
		case svcAttrTimeout:
			s.Timeout = ad.Uint32()
		case svcAttrNetmask:
			netmask = ad.Bytes()
		case svcAttrStats:
			st := Stats{}
			ad.Nested(func(nad *netlink.AttributeDecoder) error { return decodeStats(nad, &st) })
			stats = &st
		case svcAttrStats64:
			st := Stats{}
			ad.Nested(func(nad *netlink.AttributeDecoder) error { return decodeStats(nad, &st) })
			stats64 = &st
		}
	}
	if err := ad.Err(); err != nil {
		return Service{}, fmt.Errorf("decode service: %w", err)
	}
	if s.FWMark == 0 {
		a, err := parseAddr(s.Family, addr)
		if err != nil {
			return Service{}, fmt.Errorf("decode service: %w", err)
		}
		s.Address = netip.AddrPortFrom(a, port)
		s.Family = FamilyUnspec // implied by the address
	}
	if len(netmask) == 4 {
		if s.family() == FamilyIPv6 {
			s.NetmaskBits = int(nlenc.Uint32(netmask))
		} else {
			s.NetmaskBits = bits.LeadingZeros32(^binary.BigEndian.Uint32(netmask))
		}
	}
	switch {
	case stats64 != nil:
		s.Stats = *stats64
	case stats != nil:
		s.Stats = *stats
	}
	return s, nil
}

// decodeStats reads a stats or stats64 nest; counters are u32 or u64
// depending on the nest, so width follows the attribute's length.
func decodeStats(ad *netlink.AttributeDecoder, st *Stats) error {
	for ad.Next() {
		var v uint64
		switch len(ad.Bytes()) {
		case 4:
			v = uint64(ad.Uint32())
		case 8:
			v = ad.Uint64()
		default:
			continue
		}
		switch ad.Type() {
		case statsAttrConns:
			st.Connections = v
		case statsAttrInPkts:
			st.PacketsIn = v
		case statsAttrOutPkts:
			st.PacketsOut = v
		case statsAttrInBytes:
			st.BytesIn = v
		case statsAttrOutBytes:
			st.BytesOut = v
		case statsAttrCPS:
			st.CPS = v
		case statsAttrInPPS:
			st.PPSIn = v
		case statsAttrOutPPS:
			st.PPSOut = v
		case statsAttrInBPS:
			st.BPSIn = v
		case statsAttrOutBPS:
			st.BPSOut = v
		}
	}
	return ad.Err()
}

// encodeDestID writes the attributes identifying a destination.
func encodeDestID(ae *netlink.AttributeEncoder, d Destination) {
	f := d.Family
	if f == FamilyUnspec {
		f = FamilyOf(d.Address.Addr())
	}
	ae.Uint16(destAttrAddrFamily, uint16(f))
	ae.Bytes(destAttrAddr, addrBytes(d.Address.Addr()))
	ae.Bytes(destAttrPort, be16(d.Address.Port()))
}

// encodeDest writes a full destination (for NEW and SET).
func encodeDest(ae *netlink.AttributeEncoder, d Destination) {
	encodeDestID(ae, d)
	ae.Uint32(destAttrFwdMethod, uint32(d.Forward)&connFwdMask)
	ae.Uint32(destAttrWeight, uint32(d.Weight))
	ae.Uint32(destAttrUThresh, d.UpperThreshold)
	ae.Uint32(destAttrLThresh, d.LowerThreshold)
	if d.Forward == ForwardTunnel {
		ae.Uint8(destAttrTunType, d.TunnelType)
		ae.Bytes(destAttrTunPort, be16(d.TunnelPort))
		ae.Uint16(destAttrTunFlags, d.TunnelFlags)
	}
}

// decodeDest reads the attributes of a destination; svcFamily is used when
// the kernel does not report the destination's own family.
func decodeDest(ad *netlink.AttributeDecoder, svcFamily Family) (Destination, error) {
	var d Destination
	var addr []byte
	var port uint16
	var stats, stats64 *Stats
	family := svcFamily
	for ad.Next() {
		switch ad.Type() {
		case destAttrAddr:
			addr = ad.Bytes()
		case destAttrPort:
			if b := ad.Bytes(); len(b) == 2 {
				port = binary.BigEndian.Uint16(b)
			}
		case destAttrAddrFamily:
			family = Family(ad.Uint16())
		case destAttrFwdMethod:
			d.Forward = ForwardMethod(ad.Uint32() & connFwdMask)
		case destAttrWeight:
			d.Weight = int32(ad.Uint32())
		case destAttrUThresh:
			d.UpperThreshold = ad.Uint32()
		case destAttrLThresh:
			d.LowerThreshold = ad.Uint32()
		case destAttrActiveConns:
			d.ActiveConns = ad.Uint32()
		case destAttrInactConns:
			d.InactiveConns = ad.Uint32()
		case destAttrPersistConns:
			d.PersistConns = ad.Uint32()
		case destAttrTunType:
			d.TunnelType = ad.Uint8()
		case destAttrTunPort:
			if b := ad.Bytes(); len(b) == 2 {
				d.TunnelPort = binary.BigEndian.Uint16(b)
			}
		case destAttrTunFlags:
			d.TunnelFlags = ad.Uint16()
		case destAttrStats:
			st := Stats{}
			ad.Nested(func(nad *netlink.AttributeDecoder) error { return decodeStats(nad, &st) })
			stats = &st
		case destAttrStats64:
			st := Stats{}
			ad.Nested(func(nad *netlink.AttributeDecoder) error { return decodeStats(nad, &st) })
			stats64 = &st
		}
	}
	if err := ad.Err(); err != nil {
		return Destination{}, fmt.Errorf("decode destination: %w", err)
	}
	a, err := parseAddr(family, addr)
	if err != nil {
		return Destination{}, fmt.Errorf("decode destination: %w", err)
	}
	d.Address = netip.AddrPortFrom(a, port)
	switch {
	case stats64 != nil:
		d.Stats = *stats64
	case stats != nil:
		d.Stats = *stats
	}
	return d, nil
}

// encodeDaemon writes a sync daemon (for NEW_DAEMON).
func encodeDaemon(ae *netlink.AttributeEncoder, d SyncDaemon) {
	ae.Uint32(daemonAttrState, uint32(d.State))
	ae.String(daemonAttrMcastIfn, d.Interface)
	ae.Uint32(daemonAttrSyncID, uint32(d.SyncID))
	if d.MaxLen != 0 {
		ae.Uint16(daemonAttrSyncMaxLen, d.MaxLen)
	}
	if d.Group.IsValid() {
		if d.Group.Is4() {
			g := d.Group.As4()
			ae.Bytes(daemonAttrMcastGroup, g[:])
		} else {
			g := d.Group.As16()
			ae.Bytes(daemonAttrMcastGrp6, g[:])
		}
	}
	if d.Port != 0 {
		// Unlike service and destination ports, the kernel reads this one
		// in host byte order (nla_get_u16 in ip_vs_genl_new_daemon).
		ae.Uint16(daemonAttrMcastPort, d.Port)
	}
	if d.TTL != 0 {
		ae.Uint8(daemonAttrMcastTTL, d.TTL)
	}
}

// decodeDaemon reads a sync daemon nest.
func decodeDaemon(ad *netlink.AttributeDecoder) (SyncDaemon, error) {
	var d SyncDaemon
	for ad.Next() {
		switch ad.Type() {
		case daemonAttrState:
			d.State = DaemonState(ad.Uint32())
		case daemonAttrMcastIfn:
			d.Interface = ad.String()
		case daemonAttrSyncID:
			d.SyncID = uint8(ad.Uint32())
		case daemonAttrSyncMaxLen:
			d.MaxLen = ad.Uint16()
		case daemonAttrMcastGroup:
			if b := ad.Bytes(); len(b) == 4 {
				d.Group = netip.AddrFrom4([4]byte(b))
			}
		case daemonAttrMcastGrp6:
			if b := ad.Bytes(); len(b) == 16 {
				d.Group = netip.AddrFrom16([16]byte(b))
			}
		case daemonAttrMcastPort:
			d.Port = ad.Uint16()
		case daemonAttrMcastTTL:
			d.TTL = ad.Uint8()
		}
	}
	if err := ad.Err(); err != nil {
		return SyncDaemon{}, fmt.Errorf("decode sync daemon: %w", err)
	}
	return d, nil
}

// decodeTimeouts reads GET_CONFIG's reply attributes.
func decodeTimeouts(ad *netlink.AttributeDecoder) (Timeouts, error) {
	var t Timeouts
	for ad.Next() {
		switch ad.Type() {
		case cmdAttrTimeoutTCP:
			t.TCP = time.Duration(ad.Uint32()) * time.Second
		case cmdAttrTimeoutTCPFin:
			t.TCPFin = time.Duration(ad.Uint32()) * time.Second
		case cmdAttrTimeoutUDP:
			t.UDP = time.Duration(ad.Uint32()) * time.Second
		}
	}
	return t, ad.Err()
}

// decodeInfo reads GET_INFO's reply attributes.
func decodeInfo(ad *netlink.AttributeDecoder) (Info, error) {
	var i Info
	for ad.Next() {
		switch ad.Type() {
		case infoAttrVersion:
			i.Version = ad.Uint32()
		case infoAttrConnTabSize:
			i.ConnTabSize = ad.Uint32()
		}
	}
	return i, ad.Err()
}

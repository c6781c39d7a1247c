//go:build linux

package testguest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// configureLink sets the link up, adds the address and the default route
// over rtnetlink. EEXIST from the address or the route is success.
func configureLink(index int, addr netip.Prefix, gw netip.Addr) error {
	c, err := dialRoute()
	if err != nil {
		return err
	}
	defer c.close()

	// RTM_NEWLINK: ifinfomsg{family, pad, type, index, flags, change}.
	link := make([]byte, unix.SizeofIfInfomsg)
	link[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(link[4:], uint32(index))
	binary.NativeEndian.PutUint32(link[8:], unix.IFF_UP)
	binary.NativeEndian.PutUint32(link[12:], unix.IFF_UP)
	if err := c.request(unix.RTM_NEWLINK, 0, link); err != nil {
		return fmt.Errorf("set link up: %w", err)
	}

	// RTM_NEWADDR: ifaddrmsg{family, prefixlen, flags, scope, index} + IFA_LOCAL, IFA_ADDRESS, IFA_BROADCAST.
	ip4 := addr.Addr().As4()
	msg := make([]byte, unix.SizeofIfAddrmsg)
	msg[0] = unix.AF_INET
	msg[1] = byte(addr.Bits())
	msg[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(msg[4:], uint32(index))
	msg = appendAttr(msg, unix.IFA_LOCAL, ip4[:])
	msg = appendAttr(msg, unix.IFA_ADDRESS, ip4[:])
	if addr.Bits() < 31 {
		bcast := broadcast(addr)
		msg = appendAttr(msg, unix.IFA_BROADCAST, bcast[:])
	}
	if err := c.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, msg); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add address %v: %w", addr, err)
	}

	if !gw.IsValid() {
		return nil
	}
	// RTM_NEWROUTE: rtmsg{family, dst_len, src_len, tos, table, protocol, scope, type, flags} + RTA_GATEWAY, RTA_OIF.
	rt := make([]byte, unix.SizeofRtMsg)
	rt[0] = unix.AF_INET
	rt[4] = unix.RT_TABLE_MAIN
	rt[5] = unix.RTPROT_STATIC
	rt[6] = unix.RT_SCOPE_UNIVERSE
	rt[7] = unix.RTN_UNICAST
	gw4 := gw.As4()
	rt = appendAttr(rt, unix.RTA_GATEWAY, gw4[:])
	oif := make([]byte, 4)
	binary.NativeEndian.PutUint32(oif, uint32(index))
	rt = appendAttr(rt, unix.RTA_OIF, oif)
	if err := c.request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, rt); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add default route via %v: %w", gw, err)
	}
	return nil
}

// appendAttr appends one rtattr{len, type} with data, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	hdr := make([]byte, unix.SizeofRtAttr)
	binary.NativeEndian.PutUint16(hdr[0:], uint16(l))
	binary.NativeEndian.PutUint16(hdr[2:], typ)
	b = append(b, hdr...)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// routeConn is an rtnetlink socket that sends one request at a time and
// waits for its acknowledgement.
type routeConn struct {
	fd  int
	seq uint32
}

func dialRoute() (*routeConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &routeConn{fd: fd}, nil
}

func (c *routeConn) close() { unix.Close(c.fd) }

// request sends one message with NLM_F_REQUEST|NLM_F_ACK and returns the
// kernel's answer: nil, or the errno it reported.
func (c *routeConn) request(typ uint16, flags uint16, body []byte) error {
	c.seq++
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], c.seq)
	msg = append(msg, body...)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("netlink receive: %w", err)
		}
		for b := buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return fmt.Errorf("netlink: malformed message (length %d of %d)", l, len(b))
			}
			mtyp := binary.NativeEndian.Uint16(b[4:])
			seq := binary.NativeEndian.Uint32(b[8:])
			if seq == c.seq && mtyp == unix.NLMSG_ERROR {
				if l < unix.SizeofNlMsghdr+4 {
					return errors.New("netlink: short error message")
				}
				code := int32(binary.NativeEndian.Uint32(b[unix.SizeofNlMsghdr:]))
				if code == 0 {
					return nil
				}
				return unix.Errno(-code)
			}
			adv := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
			if adv > len(b) {
				break
			}
			b = b[adv:]
		}
	}
}

package netconfig

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// FieldError is one problem in net.toml: the field's path and the reason.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Error is every problem found in one net.toml, in file order.
type Error struct {
	Problems []*FieldError
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("net.toml")
	if len(e.Problems) == 1 {
		b.WriteString(": ")
		b.WriteString(e.Problems[0].Error())
		return b.String()
	}
	fmt.Fprintf(&b, ": %d problems", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Parse reads and validates a net.toml.
func Parse(data []byte) (*Config, error) {
	var raw map[string]any
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Problems: []*FieldError{{Field: fmt.Sprintf("line %d", pe.Position.Line), Reason: pe.Message}}}
		}
		return nil, &Error{Problems: []*FieldError{{Field: "(file)", Reason: err.Error()}}}
	}
	p := &parser{}
	c := p.config(raw, topLevelOrder(md))
	if len(p.problems) > 0 {
		return nil, &Error{Problems: p.problems}
	}
	return c, nil
}

// topLevelOrder is the order in which the file names its top-level keys.
func topLevelOrder(md toml.MetaData) []string {
	var order []string
	seen := map[string]bool{}
	for _, k := range md.Keys() {
		if len(k) == 0 || seen[k[0]] {
			continue
		}
		seen[k[0]] = true
		order = append(order, k[0])
	}
	return order
}

type parser struct {
	problems []*FieldError
}

func (p *parser) fail(field, format string, a ...any) {
	p.problems = append(p.problems, &FieldError{Field: field, Reason: fmt.Sprintf(format, a...)})
}

// fieldsOf lists the version's fields of a device, by kind.
func fieldsOf(version int, kind Kind) map[string]bool {
	f := map[string]bool{"primary": true, "dhcp4": true, "dhcp6": true}
	if version >= 2 {
		for _, k := range []string{"static4", "static6", "route", "mtu"} {
			f[k] = true
		}
	}
	switch kind {
	case KindBond:
		for _, k := range []string{"kind", "mode", "interfaces", "min-links", "monitoring"} {
			f[k] = true
		}
	case KindVLAN:
		for _, k := range []string{"kind", "device", "id"} {
			f[k] = true
		}
	}
	return f
}

// sinceVersion says which net.toml version introduced a field.
var sinceVersion = map[string]int{
	"static4": 2, "static6": 2, "route": 2, "mtu": 2,
	"kind": 3, "mode": 3, "interfaces": 3, "min-links": 3, "monitoring": 3, "device": 3, "id": 3,
}

func (p *parser) config(raw map[string]any, order []string) *Config {
	c := &Config{Source: "net.toml"}
	v, ok := raw["version"]
	if !ok {
		p.fail("version", "required: the first key of net.toml, 1, 2 or 3")
		return nil
	}
	n, ok := v.(int64)
	if !ok || n < 1 || n > 3 {
		p.fail("version", "%s is not a known version (1, 2 or 3)", show(v))
		return nil
	}
	c.Version = int(n)
	macs := map[string]string{}
	for _, id := range order {
		if id == "version" {
			continue
		}
		table, ok := raw[id].(map[string]any)
		if !ok {
			p.fail(id, "must be a table of the device's settings, not %s", show(raw[id]))
			continue
		}
		d, ok := p.device(c.Version, id, table)
		if !ok {
			continue
		}
		if d.MAC != nil {
			if other, dup := macs[d.MAC.String()]; dup {
				p.fail(id, "the same MAC address as %s", other)
				continue
			}
			macs[d.MAC.String()] = id
		}
		c.Devices = append(c.Devices, d)
	}
	if len(c.Devices) == 0 && len(p.problems) == 0 {
		p.fail("(file)", "no interfaces: add a table per interface, for example [eth0] dhcp4 = true")
	}
	p.crossChecks(c)
	return c
}

// device reads one device table.
func (p *parser) device(version int, id string, t map[string]any) (Device, bool) {
	start := len(p.problems)
	d := Device{Kind: KindInterface}
	if k, ok := t["kind"]; ok && version >= 3 {
		s, _ := k.(string)
		switch strings.ToLower(s) {
		case "bond":
			d.Kind = KindBond
		case "vlan":
			d.Kind = KindVLAN
		default:
			p.fail(id+".kind", "%s is not a kind of device (bond or vlan; leave kind out for an interface)", show(k))
			return d, false
		}
	}
	if mac, err := parseMAC(id); err == nil {
		if version < 3 {
			p.fail(id, "interfaces named by MAC address need net.toml version 3")
		} else if d.Kind != KindInterface {
			p.fail(id, "a %s cannot be named by MAC address; give it a name", d.Kind)
		}
		d.MAC = mac
	} else if err := checkName(id); err != nil {
		p.fail(id, "not a valid device name: %v", err)
	} else {
		d.Name = id
	}
	allowed := fieldsOf(version, d.Kind)
	for _, k := range sortedKeys(t) {
		if allowed[k] {
			continue
		}
		switch since := sinceVersion[k]; {
		case since > version:
			p.fail(id+"."+k, "not in net.toml version %d (it needs version %d or later)", version, since)
		case since > 0:
			p.fail(id+"."+k, "not a setting of a %s", kindWord(d.Kind))
		default:
			p.fail(id+"."+k, "unknown setting")
		}
	}
	if v, ok := t["primary"]; ok {
		d.Primary = p.boolean(id+".primary", v)
	}
	d.DHCP4 = p.dhcp4(id+".dhcp4", t["dhcp4"])
	d.DHCP6 = p.dhcp6(id+".dhcp6", t["dhcp6"])
	if allowed["static4"] {
		d.Static4 = p.static(id+".static4", t["static4"], true)
		d.Static6 = p.static(id+".static6", t["static6"], false)
		d.Routes = p.routes(id, t["route"], d)
		if v, ok := t["mtu"]; ok {
			d.MTU = uint32(p.integer(id+".mtu", v, 68, 65535))
		}
	}
	switch d.Kind {
	case KindBond:
		d.Bond = p.bond(id, t)
	case KindVLAN:
		d.VLAN = p.vlan(id, t)
	}
	return d, len(p.problems) == start
}

func kindWord(k Kind) string {
	if k == KindInterface {
		return "plain interface (bonds and VLANs need kind = \"bond\" or \"vlan\")"
	}
	return string(k)
}

func (p *parser) dhcp4(field string, v any) *DHCP4 {
	switch x := v.(type) {
	case nil:
		return nil
	case bool:
		if !x {
			return nil
		}
		return &DHCP4{}
	case map[string]any:
		p.only(field, x, "enabled", "route-metric", "optional")
		if !p.enabled(field, x) {
			return nil
		}
		d := &DHCP4{}
		if o, ok := x["optional"]; ok {
			d.Optional = p.boolean(field+".optional", o)
		}
		if m, ok := x["route-metric"]; ok {
			n := uint32(p.integer(field+".route-metric", m, 0, math.MaxUint32))
			d.RouteMetric = &n
		}
		return d
	default:
		p.fail(field, "must be true, false or a table with enabled, route-metric and optional; got %s", show(v))
		return nil
	}
}

func (p *parser) dhcp6(field string, v any) *DHCP6 {
	switch x := v.(type) {
	case nil:
		return nil
	case bool:
		if !x {
			return nil
		}
		return &DHCP6{}
	case map[string]any:
		p.only(field, x, "enabled", "optional")
		if !p.enabled(field, x) {
			return nil
		}
		d := &DHCP6{}
		if o, ok := x["optional"]; ok {
			d.Optional = p.boolean(field+".optional", o)
		}
		return d
	default:
		p.fail(field, "must be true, false or a table with enabled and optional; got %s", show(v))
		return nil
	}
}

func (p *parser) enabled(field string, t map[string]any) bool {
	v, ok := t["enabled"]
	if !ok {
		p.fail(field+".enabled", "required in a %s table (true or false)", field[strings.LastIndex(field, ".")+1:])
		return false
	}
	return p.boolean(field+".enabled", v)
}

// only reports the keys of t that are not among allowed.
func (p *parser) only(field string, t map[string]any, allowed ...string) {
	for _, k := range sortedKeys(t) {
		found := false
		for _, a := range allowed {
			found = found || a == k
		}
		if !found {
			p.fail(field+"."+k, "unknown setting (expected %s)", strings.Join(allowed, ", "))
		}
	}
}

func (p *parser) static(field string, v any, four bool) []netip.Prefix {
	if v == nil {
		return nil
	}
	t, ok := v.(map[string]any)
	if !ok {
		p.fail(field, "must be a table with addresses, got %s", show(v))
		return nil
	}
	p.only(field, t, "addresses")
	list, ok := t["addresses"].([]any)
	if !ok || len(list) == 0 {
		p.fail(field+".addresses", "required: a list of addresses with their prefix length, for example [\"192.168.14.2/24\"]")
		return nil
	}
	family := "IPv6"
	if four {
		family = "IPv4"
	}
	var out []netip.Prefix
	for i, a := range list {
		f := fmt.Sprintf("%s.addresses[%d]", field, i)
		s, ok := a.(string)
		if !ok {
			p.fail(f, "must be a quoted address with prefix length, got %s", show(a))
			continue
		}
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			p.fail(f, "%q is not an %s address with a prefix length (like %s)", s, family, map[bool]string{true: "10.0.0.10/24", false: "2001:db8::10/64"}[four])
			continue
		}
		if pfx.Addr().Is4() != four || pfx.Addr().Is4In6() {
			p.fail(f, "%q is not an %s address", s, family)
			continue
		}
		out = append(out, pfx)
	}
	return out
}

func (p *parser) routes(id string, v any, d Device) []Route {
	if v == nil {
		return nil
	}
	list, ok := v.([]map[string]any)
	if !ok {
		p.fail(id+".route", "must be an array of tables ([[%s.route]]), got %s", id, show(v))
		return nil
	}
	if len(d.Static4) == 0 && len(d.Static6) == 0 {
		p.fail(id+".route", "static routes need static4 or static6 addresses on the same device")
	}
	var out []Route
	for i, t := range list {
		f := fmt.Sprintf("%s.route[%d]", id, i)
		p.only(f, t, "to", "from", "via", "route-metric")
		var r Route
		if s, ok := t["via"]; ok {
			r.Via = p.addr(f+".via", s)
		}
		if s, ok := t["from"]; ok {
			r.From = p.addr(f+".from", s)
		}
		if m, ok := t["route-metric"]; ok {
			n := uint32(p.integer(f+".route-metric", m, 0, math.MaxUint32))
			r.Metric = &n
		}
		to, ok := t["to"].(string)
		switch {
		case !ok:
			p.fail(f+".to", "required: \"default\" or a destination with prefix length")
			continue
		case to == "default":
			r.Default = true
			four := len(d.Static4) > 0
			switch {
			case r.Via.IsValid():
				four = r.Via.Is4()
			case len(d.Static4) > 0 && len(d.Static6) > 0:
				p.fail(f+".via", "required for a default route on a device with both IPv4 and IPv6 addresses (it picks the family)")
			}
			if four {
				r.To = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			} else {
				r.To = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
		default:
			pfx, err := netip.ParsePrefix(to)
			if err != nil {
				p.fail(f+".to", "%q is neither \"default\" nor a destination with prefix length (like 10.10.10.0/24)", to)
				continue
			}
			r.To = pfx.Masked()
		}
		if r.Via.IsValid() && r.Via.Is4() != r.To.Addr().Is4() {
			p.fail(f+".via", "%s is not of the destination's address family", r.Via)
		}
		if r.From.IsValid() && r.From.Is4() != r.To.Addr().Is4() {
			p.fail(f+".from", "%s is not of the destination's address family", r.From)
		}
		out = append(out, r)
	}
	return out
}

var bondModes = []string{"active-backup"}

func (p *parser) bond(id string, t map[string]any) *Bond {
	b := &Bond{}
	mode, _ := t["mode"].(string)
	switch {
	case t["mode"] == nil:
		p.fail(id+".mode", "required: %s (the only bonding mode Gantry supports, as Bottlerocket)", bondModes[0])
	case mode != "active-backup":
		p.fail(id+".mode", "%s is not supported: only %s", show(t["mode"]), bondModes[0])
	}
	b.Mode = mode
	list, ok := t["interfaces"].([]any)
	if !ok || len(list) == 0 {
		p.fail(id+".interfaces", "required: the bond's member interfaces, for example [\"eth1\", \"eth2\"]")
	}
	for i, v := range list {
		f := fmt.Sprintf("%s.interfaces[%d]", id, i)
		s, ok := v.(string)
		if !ok {
			p.fail(f, "must be a quoted interface name, got %s", show(v))
			continue
		}
		if _, err := parseMAC(s); err == nil {
			p.fail(f, "%q: bond members are named, not given by MAC address", s)
			continue
		}
		if err := checkName(s); err != nil {
			p.fail(f, "%q is not a valid interface name: %v", s, err)
			continue
		}
		b.Interfaces = append(b.Interfaces, s)
	}
	if v, ok := t["min-links"]; ok {
		b.MinLinks = int(p.integer(id+".min-links", v, 0, math.MaxInt32))
		if len(list) > 0 && b.MinLinks > len(list) {
			p.fail(id+".min-links", "%d is more than the bond's %d interfaces", b.MinLinks, len(list))
		}
	}
	m, ok := t["monitoring"].(map[string]any)
	if !ok {
		p.fail(id+".monitoring", "required: a table of miimon-* or arpmon-* settings")
		return b
	}
	f := id + ".monitoring"
	var mii, arp []string
	for _, k := range sortedKeys(m) {
		switch {
		case strings.HasPrefix(k, "miimon-"):
			mii = append(mii, k)
		case strings.HasPrefix(k, "arpmon-"):
			arp = append(arp, k)
		}
	}
	p.only(f, m, "miimon-frequency-ms", "miimon-updelay-ms", "miimon-downdelay-ms",
		"arpmon-interval-ms", "arpmon-validate", "arpmon-targets")
	switch {
	case len(mii) > 0 && len(arp) > 0:
		p.fail(f, "choose one kind of monitoring: miimon-* or arpmon-*, not both")
	case len(mii) > 0:
		b.MII = &MIIMonitor{}
		for _, k := range []string{"miimon-frequency-ms", "miimon-updelay-ms", "miimon-downdelay-ms"} {
			if _, ok := m[k]; !ok {
				p.fail(f+"."+k, "required with MII monitoring")
			}
		}
		b.MII.FrequencyMS = uint32(p.optInt(f+".miimon-frequency-ms", m["miimon-frequency-ms"]))
		b.MII.UpDelayMS = uint32(p.optInt(f+".miimon-updelay-ms", m["miimon-updelay-ms"]))
		b.MII.DownDelayMS = uint32(p.optInt(f+".miimon-downdelay-ms", m["miimon-downdelay-ms"]))
		if _, ok := m["miimon-frequency-ms"]; ok && b.MII.FrequencyMS == 0 {
			p.fail(f+".miimon-frequency-ms", "0 turns MII monitoring off; give a frequency or use arpmon-*")
		}
		if b.MII.FrequencyMS > 0 && (b.MII.UpDelayMS < b.MII.FrequencyMS || b.MII.DownDelayMS < b.MII.FrequencyMS) {
			p.fail(f, "miimon-updelay-ms and miimon-downdelay-ms must be at least miimon-frequency-ms")
		}
	case len(arp) > 0:
		b.ARP = &ARPMonitor{}
		if _, ok := m["arpmon-interval-ms"]; !ok {
			p.fail(f+".arpmon-interval-ms", "required with ARP monitoring")
		} else if b.ARP.IntervalMS = uint32(p.optInt(f+".arpmon-interval-ms", m["arpmon-interval-ms"])); b.ARP.IntervalMS == 0 {
			p.fail(f+".arpmon-interval-ms", "0 turns ARP monitoring off; give an interval or use miimon-*")
		}
		validate, _ := m["arpmon-validate"].(string)
		switch validate {
		case "all", "none", "active", "backup":
			b.ARP.Validate = validate
		default:
			p.fail(f+".arpmon-validate", "%s: expected all, none, active or backup", show(m["arpmon-validate"]))
		}
		targets, _ := m["arpmon-targets"].([]any)
		if len(targets) < 1 || len(targets) > 16 {
			p.fail(f+".arpmon-targets", "between 1 and 16 IPv4 addresses are required, got %d", len(targets))
		}
		for i, v := range targets {
			a := p.addr(fmt.Sprintf("%s.arpmon-targets[%d]", f, i), v)
			if a.IsValid() && !a.Is4() {
				p.fail(fmt.Sprintf("%s.arpmon-targets[%d]", f, i), "%s is not an IPv4 address", a)
			}
			b.ARP.Targets = append(b.ARP.Targets, a)
		}
	default:
		p.fail(f, "empty: give miimon-frequency-ms, miimon-updelay-ms and miimon-downdelay-ms, or arpmon-interval-ms, arpmon-validate and arpmon-targets")
	}
	return b
}

func (p *parser) vlan(id string, t map[string]any) *VLAN {
	v := &VLAN{}
	dev, ok := t["device"].(string)
	switch {
	case !ok:
		p.fail(id+".device", "required: the device the VLAN is tagged on, for example \"eth0\"")
	default:
		if _, err := parseMAC(dev); err == nil {
			p.fail(id+".device", "%q: a VLAN's device is named, not given by MAC address", dev)
		} else if err := checkName(dev); err != nil {
			p.fail(id+".device", "%q is not a valid device name: %v", dev, err)
		}
		v.Device = dev
	}
	if n, ok := t["id"]; ok {
		v.ID = int(p.integer(id+".id", n, 0, 4094))
	} else {
		p.fail(id+".id", "required: the VLAN tag, 0 to 4094")
	}
	return v
}

// crossChecks are the rules between devices.
func (p *parser) crossChecks(c *Config) {
	if c == nil {
		return
	}
	var primaries []string
	names := map[string]bool{}
	vlanParents := map[string]bool{}
	for _, d := range c.Devices {
		if d.Primary {
			primaries = append(primaries, d.ID())
		}
		if d.Name != "" {
			names[d.Name] = true
		}
		if d.VLAN != nil {
			vlanParents[d.VLAN.Device] = true
		}
	}
	if len(primaries) > 1 {
		p.fail(strings.Join(primaries, ", "), "more than one device is primary; mark one")
	}
	members := map[string]string{}
	for _, d := range c.Devices {
		if d.Bond == nil {
			continue
		}
		for i, m := range d.Bond.Interfaces {
			f := fmt.Sprintf("%s.interfaces[%d]", d.ID(), i)
			switch {
			case names[m]:
				p.fail(f, "%s is a member of bond %s and cannot be configured on its own", m, d.Name)
			case members[m] != "":
				p.fail(f, "%s is already a member of bond %s", m, members[m])
			case vlanParents[m]:
				p.fail(f, "%s is a member of bond %s and cannot carry a VLAN; tag the bond instead", m, d.Name)
			}
			members[m] = d.Name
		}
	}
	for _, d := range c.Devices {
		if !d.HasAddressing() && !vlanParents[d.Name] {
			p.fail(d.ID(), "no addressing: set dhcp4, dhcp6, static4 or static6 (or tag a VLAN on it)")
		}
		if d.VLAN != nil && d.VLAN.Device == d.Name {
			p.fail(d.ID()+".device", "a VLAN cannot be tagged on itself")
		}
		if d.Primary && !d.HasAddressing() {
			p.fail(d.ID()+".primary", "the primary device needs addressing of its own")
		}
	}
}

func (p *parser) boolean(field string, v any) bool {
	b, ok := v.(bool)
	if !ok {
		p.fail(field, "must be true or false, got %s", show(v))
	}
	return b
}

func (p *parser) integer(field string, v any, lo, hi int64) int64 {
	n, ok := v.(int64)
	if !ok {
		p.fail(field, "must be an integer, got %s", show(v))
		return 0
	}
	if n < lo || n > hi {
		p.fail(field, "%d is out of range %d to %d", n, lo, hi)
		return 0
	}
	return n
}

func (p *parser) optInt(field string, v any) int64 {
	if v == nil {
		return 0
	}
	return p.integer(field, v, 0, math.MaxUint32)
}

func (p *parser) addr(field string, v any) netip.Addr {
	s, ok := v.(string)
	if !ok {
		p.fail(field, "must be a quoted IP address, got %s", show(v))
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		p.fail(field, "%q is not an IP address", s)
		return netip.Addr{}
	}
	return a.Unmap()
}

// parseMAC accepts a 6-byte MAC address with ':' or '-' separators.
func parseMAC(s string) (net.HardwareAddr, error) {
	if len(s) != 17 {
		return nil, fmt.Errorf("not a MAC address")
	}
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return nil, fmt.Errorf("not a MAC address")
	}
	return m, nil
}

func sortedKeys(t map[string]any) []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// show prints a TOML value the way the user wrote it, for messages.
func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("%q", x)
	case map[string]any:
		return "a table"
	case []any, []map[string]any:
		return "a list"
	default:
		return fmt.Sprintf("%v", x)
	}
}

package model

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/distribution/reference"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
)

// Modeled types: named strings whose Validate method holds the rule of the
// matching Bottlerocket modeled type (reference api-system §4.2).

// SingleLineString has no line breaks.
type SingleLineString string

// Validate implements Validator.
func (s SingleLineString) Validate() error {
	if i := strings.IndexAny(string(s), "\n\r\v\f\u0085\u2028\u2029"); i >= 0 {
		return fmt.Errorf("must be a single line (found a line break at byte %d)", i)
	}
	return nil
}

// ValidBase64 is standard base64; the original text is kept.
type ValidBase64 string

// Validate implements Validator.
func (s ValidBase64) Validate() error {
	if _, err := base64.StdEncoding.DecodeString(string(s)); err != nil {
		return fmt.Errorf("must be base64 (standard alphabet, padded): %v", err)
	}
	return nil
}

var hostnameRe = regexp.MustCompile(`^[0-9a-z.-]{1,253}$`)

// ValidLinuxHostname is a lower-case host name of dot-separated labels.
type ValidLinuxHostname string

// Validate implements Validator.
func (s ValidLinuxHostname) Validate() error {
	h := string(s)
	if !hostnameRe.MatchString(h) {
		return errors.New("must be 1-253 characters of a-z, 0-9, '.' and '-'")
	}
	if h[0] == '-' || h[0] == '.' {
		return errors.New("must not start with '-' or '.'")
	}
	for _, label := range strings.Split(h, ".") {
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("label %q must be 1-63 characters", label)
		}
		if label[0] == '-' {
			return fmt.Errorf("label %q must not start with '-'", label)
		}
	}
	return nil
}

// Identifier names a host container, bootstrap container or bundle: ASCII
// letters, digits and '-', at most 76 characters (containerd's limit).
type Identifier string

// Validate implements Validator.
func (s Identifier) Validate() error {
	if len(s) == 0 || len(s) > 76 {
		return errors.New("must be 1-76 characters")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("character %q is not allowed (allowed: A-Z a-z 0-9 -)", c)
		}
	}
	return nil
}

// ImageReference is a container image reference, as docker and containerd
// read it: [registry[:port]/]repository[:tag][@digest], the repository in
// lower case ("ubuntu" is docker.io/library/ubuntu:latest).
type ImageReference string

// Validate implements Validator.
func (s ImageReference) Validate() error {
	if _, err := reference.ParseDockerRef(string(s)); err != nil {
		return fmt.Errorf("%q is not an image reference ([registry/]repository[:tag][@digest], repository in lower case): %v", string(s), err)
	}
	return nil
}

// URL is anything that parses as a URL, either as given or after "http://"
// is prefixed (so "example.com" and "10.0.0.1" pass, "how are you" fails).
type URL string

// Validate implements Validator.
func (s URL) Validate() error {
	v := string(s)
	if v == "" || strings.ContainsAny(v, " \t\r\n") {
		return fmt.Errorf("%q is not a URL", v)
	}
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && (u.Host != "" || u.Opaque != "") {
		return nil
	}
	if u, err := url.Parse("http://" + v); err == nil && u.Host != "" {
		return nil
	}
	return fmt.Errorf("%q is not a URL", v)
}

var semverRe = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// FriendlyVersion is "latest" or a semantic version with an optional "v".
type FriendlyVersion string

// Validate implements Validator.
func (s FriendlyVersion) Validate() error {
	if s == "latest" || semverRe.MatchString(string(s)) {
		return nil
	}
	return fmt.Errorf("%q must be \"latest\" or a version such as v1.2.3", string(s))
}

// DNSDomain is a domain name that is not an IP address.
type DNSDomain string

// Validate implements Validator.
func (s DNSDomain) Validate() error {
	v := string(s)
	if strings.HasPrefix(v, ".") {
		return errors.New("must not start with '.'")
	}
	if _, err := netip.ParseAddr(v); err == nil {
		return errors.New("must be a domain name, not an IP address")
	}
	if u, err := url.Parse("http://" + v); err != nil || u.Host != v || v == "" {
		return fmt.Errorf("%q is not a domain name", v)
	}
	return nil
}

var sysctlRe = regexp.MustCompile(`^[a-zA-Z0-9./_-]{1,128}$`)

// SysctlKey names a kernel parameter such as vm.max_map_count.
type SysctlKey string

// Validate implements Validator.
func (s SysctlKey) Validate() error {
	v := string(s)
	switch {
	case !sysctlRe.MatchString(v):
		return errors.New("must be 1-128 characters of a-z A-Z 0-9 . / _ -")
	case strings.Contains(v, ".."):
		return errors.New("must not contain '..'")
	case v[0] == '.' || v[0] == '/':
		return errors.New("must not start with '.' or '/'")
	}
	return nil
}

// KmodKey names a kernel module.
type KmodKey string

// Validate implements Validator.
func (s KmodKey) Validate() error {
	if len(s) == 0 || len(s) > 56 {
		return errors.New("must be 1-56 characters")
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("character %q is not allowed in a module name", c)
		}
	}
	return nil
}

// BootConfigKey names a kernel or init parameter: dot-separated words of
// A-Z a-z 0-9 _ -.
type BootConfigKey string

// Validate implements Validator.
func (s BootConfigKey) Validate() error {
	if s == "" {
		return errors.New("must not be empty")
	}
	for _, w := range strings.Split(string(s), ".") {
		if w == "" {
			return errors.New("must not have empty words")
		}
		for _, c := range w {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q is not allowed in a boot parameter name", c)
			}
		}
	}
	return nil
}

// BootConfigValue is a printable ASCII parameter value that does not hold
// both kinds of quote.
type BootConfigValue string

// Validate implements Validator.
func (s BootConfigValue) Validate() error {
	for _, c := range s {
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("character %q is not printable ASCII", c)
		}
	}
	if strings.Contains(string(s), `'`) && strings.Contains(string(s), `"`) {
		return errors.New("must not contain both ' and \"")
	}
	return nil
}

// oneOf validates an enumeration.
func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%q must be one of: %s", v, strings.Join(allowed, ", "))
}

// Lockdown is the kernel lockdown level.
type Lockdown string

// Validate implements Validator.
func (s Lockdown) Validate() error { return oneOf(string(s), "none", "integrity", "confidentiality") }

// ApiclientCommand is one bootstrap command: apiclient and its arguments.
// Only apiclient runs: a bootstrap command changes the node through its
// API, like a user would, and nothing else.
type ApiclientCommand []string

// CheckJSON implements JSONChecker: a list of strings, the first apiclient.
func (ApiclientCommand) CheckJSON(v any) error {
	arr, ok := v.([]any)
	if !ok {
		return fmt.Errorf("expected a list of arguments, got %s", jsonKind(v))
	}
	for i, a := range arr {
		if _, ok := a.(string); !ok {
			return fmt.Errorf("argument %d: expected a string, got %s", i, jsonKind(a))
		}
	}
	if len(arr) == 0 || arr[0] != "apiclient" {
		return fmt.Errorf("must start with \"apiclient\" (only apiclient commands run), got %v", arr)
	}
	return nil
}

// BootstrapContainerMode says when a bootstrap container runs.
type BootstrapContainerMode string

// Validate implements Validator.
func (s BootstrapContainerMode) Validate() error { return oneOf(string(s), "off", "once", "always") }

// PemCertificateString is base64 of one or more PEM certificates; empty clears
// a bundle.
type PemCertificateString string

// Validate implements Validator.
func (s PemCertificateString) Validate() error {
	if s == "" {
		return nil
	}
	raw, err := base64.StdEncoding.DecodeString(string(s))
	if err != nil {
		return fmt.Errorf("must be base64 of PEM certificates: %v", err)
	}
	n := 0
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n+1, block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %v", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("holds no PEM certificate")
	}
	return nil
}

// IPAddress is an IPv4 or IPv6 address.
type IPAddress string

// Validate implements Validator.
func (s IPAddress) Validate() error {
	if _, err := netip.ParseAddr(string(s)); err != nil {
		return fmt.Errorf("%q is not an IP address", string(s))
	}
	return nil
}

// FileMode is an octal permission string such as "0644".
type FileMode string

// Validate implements Validator.
func (s FileMode) Validate() error {
	if ok, _ := regexp.MatchString(`^0?[0-7]{3,4}$`, string(s)); !ok {
		return fmt.Errorf("%q must be an octal mode such as \"0644\"", string(s))
	}
	return nil
}

// EtcHostsEntries is a list of [address, [host names]] pairs for /etc/hosts.
type EtcHostsEntries []json.RawMessage

// CheckJSON implements JSONChecker.
func (EtcHostsEntries) CheckJSON(v any) error {
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("expected a list of [address, [names]] pairs, got %s", jsonKind(v))
	}
	for i, e := range list {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return fmt.Errorf("entry %d: expected [address, [names]]", i)
		}
		ip, ok := pair[0].(string)
		if !ok || net.ParseIP(ip) == nil {
			return fmt.Errorf("entry %d: %v is not an IP address", i, pair[0])
		}
		names, ok := pair[1].([]any)
		if !ok || len(names) == 0 {
			return fmt.Errorf("entry %d: expected a non-empty list of host names", i)
		}
		for _, n := range names {
			s, ok := n.(string)
			if !ok {
				return fmt.Errorf("entry %d: host name %v is not a string", i, n)
			}
			if err := ValidLinuxHostname(strings.ToLower(s)).Validate(); err != nil {
				return fmt.Errorf("entry %d: host name %q: %v", i, s, err)
			}
		}
	}
	return nil
}

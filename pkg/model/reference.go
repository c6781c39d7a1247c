package model

import (
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// WriteReference writes the settings reference (docs/settings.md) from the
// model itself, so the documentation cannot drift from what the API accepts.
func WriteReference(w io.Writer) error {
	variantsOf := map[string][]string{}
	for v, groups := range BuiltinVariants() {
		for _, g := range groups {
			variantsOf[g] = append(variantsOf[g], v)
		}
	}
	var b strings.Builder
	b.WriteString("# Settings reference\n\n")
	b.WriteString("<!-- Generated from package model by `make docs`; do not edit. -->\n\n")
	b.WriteString("Every setting lives under `settings.` and is optional: a PATCH, `apiclient set` or user data may set any\n")
	b.WriteString("subset. Unknown keys are refused, and every refusal names the key and the reason. Lists are stored and\n")
	b.WriteString("replaced whole. In keys, a segment that contains a dot is quoted: `settings.kernel.sysctl.\"vm.max_map_count\"`.\n")
	b.WriteString("`<name>` stands for a name you choose; its type says what names are allowed.\n\n")
	b.WriteString("Value types are described at the end.\n\n")
	used := map[string]bool{}
	for _, g := range Groups() {
		vs := variantsOf[g.Name]
		sort.Strings(vs)
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", g.Name, g.Doc)
		if len(vs) > 0 {
			fmt.Fprintf(&b, "Variants: %s.\n\n", strings.Join(vs, ", "))
		} else {
			b.WriteString("Variants: none yet (modeled for variants to come).\n\n")
		}
		b.WriteString("| Key | Type | Description |\n|---|---|---|\n")
		rows := describe("settings."+g.Name, g.Type, g.Doc, used)
		for _, r := range rows {
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", r[0], r[1], r[2])
		}
		b.WriteString("\n")
	}
	b.WriteString("## Value types\n\n| Type | Rule |\n|---|---|\n")
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "| %s | %s |\n", n, typeRule(n))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// describe returns rows of key, type and description below key.
func describe(key string, t reflect.Type, doc string, used map[string]bool) [][3]string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(jsonCheckerType) || t.Kind() != reflect.Struct && t.Kind() != reflect.Map {
		return [][3]string{{key, typeName(t, used), doc}}
	}
	if t.Kind() == reflect.Map {
		sub := key + ".<" + typeName(t.Key(), used) + ">"
		elem := t.Elem()
		for elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		if elem.Kind() == reflect.Struct && !elem.Implements(jsonCheckerType) {
			return describe(sub, elem, doc, used)
		}
		return [][3]string{{sub, typeName(elem, used), doc}}
	}
	var rows [][3]string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := jsonName(f)
		if name == "" {
			continue
		}
		rows = append(rows, describe(key+"."+name, f.Type, f.Tag.Get("doc"), used)...)
	}
	return rows
}

func typeName(t reflect.Type, used map[string]bool) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.PkgPath() != "" && t.Name() != "" && (t.Implements(validatorType) || t.Implements(jsonCheckerType)) {
		used[t.Name()] = true
		return t.Name()
	}
	switch t.Kind() {
	case reflect.Slice:
		e := t.Elem()
		for e.Kind() == reflect.Pointer {
			e = e.Elem()
		}
		if e.Kind() == reflect.Struct {
			fields := []string{}
			for i := 0; i < e.NumField(); i++ {
				if n := jsonName(e.Field(i)); n != "" {
					fields = append(fields, "`"+n+"`: "+typeName(e.Field(i).Type, used))
				}
			}
			return "list of tables {" + strings.Join(fields, ", ") + "}"
		}
		return "list of " + typeName(e, used)
	case reflect.Map:
		return "table of " + typeName(t.Key(), used) + " → " + typeName(t.Elem(), used)
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		return fmt.Sprintf("integer (%d-bit)", t.Bits())
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		return fmt.Sprintf("integer ≥ 0 (%d-bit)", t.Bits())
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return t.String()
}

// typeRule describes a modeled type for the reference.
func typeRule(name string) string {
	rules := map[string]string{
		"SingleLineString":       "Text without line breaks.",
		"ValidBase64":            "Standard base64 (padded); the text is kept as given.",
		"ValidLinuxHostname":     "1–253 characters of a-z 0-9 . -, labels of 1–63 characters not starting with `-`.",
		"Identifier":             "1–76 characters of A-Z a-z 0-9 -.",
		"URL":                    "A URL, or a host that becomes one with `http://` in front (`example.com`, `10.0.0.1`).",
		"ImageReference":         "A container image reference, `[registry[:port]/]repository[:tag][@digest]`, the repository in lower case.",
		"ApiclientCommand":       "A list of arguments starting with `apiclient`.",
		"FriendlyVersion":        "`latest` or a version such as `v1.2.3`.",
		"DNSDomain":              "A domain name, not an IP address, not starting with `.`.",
		"SysctlKey":              "1–128 characters of a-z A-Z 0-9 . / _ -, no `..`, not starting with `.` or `/`.",
		"KmodKey":                "1–56 characters of A-Z a-z 0-9 _ -.",
		"BootConfigKey":          "Dot-separated words of A-Z a-z 0-9 _ -.",
		"BootConfigValue":        "Printable ASCII, not both `'` and `\"`.",
		"Lockdown":               "`none`, `integrity` or `confidentiality`.",
		"BootstrapContainerMode": "`off`, `once` or `always`.",
		"PemCertificateString":   "Base64 of one or more PEM certificates; empty clears the bundle.",
		"IPAddress":              "An IPv4 or IPv6 address.",
		"EtcHostsEntries":        "A list of `[address, [host names]]` pairs.",
		"UpdateSeed":             "An integer 0–2047.",
		"RlimitNumber":           "An integer ≥ -1, or `\"unlimited\"`.",
		"OCICapability":          "A Linux capability in kebab case without `CAP_`, e.g. `net-bind-service`.",
		"OCIRlimit":              "A resource limit name in kebab case, e.g. `max-open-files`.",
		"IntegerPercent":         "An integer 0–100, as a number or a string.",
	}
	if r, ok := rules[name]; ok {
		return r
	}
	return "See the API's error message for the exact rule; modeled after Bottlerocket's type of the same name."
}

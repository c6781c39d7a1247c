package tufrepo

import (
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-os/gantry/internal/cli"
	"github.com/gantry-os/gantry/internal/update/manifest"
)

// NewCommand returns the `repo` command line: keygen, init, add-release,
// refresh, rotate-root, validate and serve.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Create, publish to and check a TUF update repository",
		Long: "Manage a TUF update repository for Gantry nodes: serve its metadata/ directory as\n" +
			"settings.updates.metadata-base-url and its targets/ directory as settings.updates.targets-base-url.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(keygenCommand(), initCommand(), addReleaseCommand(), refreshCommand(), rotateRootCommand(), validateCommand(), serveCommand())
	return cmd
}

func keygenCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen --out DIR/NAME",
		Short: "Generate an ed25519 key pair: NAME (private, mode 0600) and NAME.pub",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kp, err := GenerateKey(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "private key %s\npublic key  %s\nkey ID      %s\n", kp.Private, kp.Public, kp.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "path of the private key; the public key goes to PATH.pub")
	cmd.MarkFlagRequired("out")
	return cmd
}

// roleFlags are a role's key files and threshold.
type roleFlags struct {
	keys      []string
	threshold int
}

func addRoleFlags(cmd *cobra.Command, role string, rf *roleFlags, threshold bool, what string) {
	cmd.Flags().StringArrayVar(&rf.keys, role+"-key", nil, fmt.Sprintf("%s key file of the %s role (repeatable)", what, role))
	if threshold {
		cmd.Flags().IntVar(&rf.threshold, role+"-threshold", 1, fmt.Sprintf("signatures the %s role needs", role))
	}
}

func (rf roleFlags) load(role string) (RoleKeys, error) {
	keys, err := loadRoleKeys(role, rf.keys)
	return RoleKeys{Keys: keys, Threshold: rf.threshold}, err
}

func loadRoleKeys(role string, paths []string) ([]*Key, error) {
	keys := make([]*Key, 0, len(paths))
	for _, p := range paths {
		k, err := LoadKey(p)
		if err != nil {
			return nil, fmt.Errorf("%s key: %w", role, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// parseExpires reads --expires values: ROLE=DURATION, or DURATION for
// every role in roles.
func parseExpires(vals []string, roles ...string) (Expirations, error) {
	var e Expirations
	field := map[string]*time.Duration{RoleRoot: &e.Root, RoleTargets: &e.Targets, RoleSnapshot: &e.Snapshot, RoleTimestamp: &e.Timestamp}
	for _, v := range vals {
		targets := roles
		d := v
		if role, dur, ok := strings.Cut(v, "="); ok {
			if !slices.Contains(roles, role) {
				return e, cli.UsageError{Err: fmt.Errorf("--expires %q: role %q is not one of %s", v, role, strings.Join(roles, ", "))}
			}
			targets, d = []string{role}, dur
		}
		dur, err := ParseOffset(d)
		if err != nil {
			return e, cli.UsageError{Err: fmt.Errorf("--expires %q: %w", v, err)}
		}
		if dur <= 0 {
			return e, cli.UsageError{Err: fmt.Errorf("--expires %q: must be positive", v)}
		}
		for _, r := range targets {
			*field[r] = dur
		}
	}
	return e, nil
}

const expiresHelp = "lifetime of re-signed metadata: ROLE=DURATION or DURATION for all (e.g. timestamp=3d, \"2 weeks\"); repeatable"

func initCommand() *cobra.Command {
	var (
		dir                                string
		root, targets, snapshot, timestamp roleFlags
		expires                            []string
		dev                                bool
	)
	cmd := &cobra.Command{
		Use:   "init --repo DIR (--root-key K --targets-key K --snapshot-key K --timestamp-key K | --dev)",
		Short: "Create a repository: root.json version 1 and an empty manifest.json",
		Long: `init creates a repository signed with the keys given for each role.

With --dev it makes a development repository instead, as gantry run serves to its node: one
key, DIR/keys/dev (made here), signs every role. It makes only what is missing, so running it
again keeps the key and the repository (and re-signs metadata about to expire).`,
		Example: `  gantry repo init --dev --repo run/metal-dev/repo
  gantry build --root-json run/metal-dev/repo/metadata/root.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dev {
				if len(root.keys)+len(targets.keys)+len(snapshot.keys)+len(timestamp.keys)+len(expires) > 0 {
					return cli.UsageError{Err: fmt.Errorf("--dev makes its own key and uses the default lifetimes: no --ROLE-key or --expires")}
				}
				return initDev(cmd, dir)
			}
			exp, err := parseExpires(expires, RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp)
			if err != nil {
				return err
			}
			opts := CreateOptions{Expires: exp}
			for _, rf := range []struct {
				role string
				f    roleFlags
				dst  *RoleKeys
			}{{RoleRoot, root, &opts.Root}, {RoleTargets, targets, &opts.Targets}, {RoleSnapshot, snapshot, &opts.Snapshot}, {RoleTimestamp, timestamp, &opts.Timestamp}} {
				if len(rf.f.keys) == 0 {
					return cli.UsageError{Err: fmt.Errorf("no %s key given (--%s-key)", rf.role, rf.role)}
				}
				if *rf.dst, err = rf.f.load(rf.role); err != nil {
					return err
				}
			}
			r, err := Create(cmd.Context(), dir, opts)
			if err != nil {
				return err
			}
			pub, err := Validate(cmd.Context(), ValidateOptions{Dir: r.Dir()})
			if err != nil {
				return fmt.Errorf("the new repository does not validate: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created repository %s\n", dir)
			printVersions(out, pub.Versions, pub.Expires)
			fmt.Fprintf(out, "ship %s in images as the trust anchor (updog's root.json)\n", r.RootPath())
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "repo", "", "repository directory to create")
	addRoleFlags(cmd, RoleRoot, &root, true, "private (or public, beyond the threshold)")
	addRoleFlags(cmd, RoleTargets, &targets, true, "private (or public, beyond the threshold)")
	addRoleFlags(cmd, RoleSnapshot, &snapshot, true, "private (or public, beyond the threshold)")
	addRoleFlags(cmd, RoleTimestamp, &timestamp, true, "private (or public, beyond the threshold)")
	cmd.Flags().StringArrayVar(&expires, "expires", nil, expiresHelp+" (default root 52w, targets and snapshot 2w, timestamp 1w)")
	cmd.Flags().BoolVar(&dev, "dev", false, "a development repository: one key, made in DIR/keys/dev, for every role; keeps what exists")
	cmd.MarkFlagRequired("repo")
	return cmd
}

// initDev is `init --dev`.
func initDev(cmd *cobra.Command, dir string) error {
	d, err := EnsureDev(cmd.Context(), dir, nil)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	switch {
	case d.Created:
		fmt.Fprintf(out, "created development repository %s\n", dir)
	case d.Refreshed:
		fmt.Fprintf(out, "development repository %s exists; re-signed its metadata, which was about to expire\n", dir)
	default:
		fmt.Fprintf(out, "development repository %s exists; kept as it is\n", dir)
	}
	fmt.Fprintf(out, "key  %s (signs every role)\nroot %s (gantry build --root-json)\n", d.KeyPath(), d.RootPath())
	return nil
}

// signingFlags are the keys of a command that re-signs targets, snapshot
// and timestamp.
type signingFlags struct {
	targets, snapshot, timestamp roleFlags
	// all are keys for every one of the three roles (--key).
	all     []string
	expires []string
}

func (s *signingFlags) add(cmd *cobra.Command) {
	addRoleFlags(cmd, RoleTargets, &s.targets, false, "private")
	addRoleFlags(cmd, RoleSnapshot, &s.snapshot, false, "private")
	addRoleFlags(cmd, RoleTimestamp, &s.timestamp, false, "private")
	cmd.Flags().StringArrayVar(&s.all, "key", nil, "private key for the targets, snapshot and timestamp roles at once, e.g. a development repository's keys/dev (repeatable)")
	cmd.Flags().StringArrayVar(&s.expires, "expires", nil, expiresHelp+" (default targets and snapshot 2w, timestamp 1w)")
}

// open opens the repository with the keys of the roles it must sign.
func (s *signingFlags) open(dir string, need ...string) (*Repo, error) {
	exp, err := parseExpires(s.expires, need...)
	if err != nil {
		return nil, err
	}
	opts := Options{Expires: exp}
	for _, rf := range []struct {
		role string
		f    roleFlags
		dst  *[]*Key
	}{{RoleTargets, s.targets, &opts.Targets}, {RoleSnapshot, s.snapshot, &opts.Snapshot}, {RoleTimestamp, s.timestamp, &opts.Timestamp}} {
		paths := append(slices.Clone(rf.f.keys), s.all...)
		if len(paths) == 0 {
			if slices.Contains(need, rf.role) {
				return nil, cli.UsageError{Err: fmt.Errorf("no %s key given (--%s-key or --key)", rf.role, rf.role)}
			}
			continue
		}
		if *rf.dst, err = loadRoleKeys(rf.role, paths); err != nil {
			return nil, err
		}
	}
	return Open(dir, opts)
}

func printPublished(out io.Writer, p *Published) {
	for _, t := range p.Targets {
		fmt.Fprintf(out, "target %s\n", t)
	}
	printVersions(out, map[string]int64{
		RoleRoot: p.RootVersion, RoleTargets: p.TargetsVersion, RoleSnapshot: p.SnapshotVersion, RoleTimestamp: p.TimestampVersion,
	}, p.Expires)
}

func printVersions(out io.Writer, versions map[string]int64, expires map[string]time.Time) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, role := range topRoles() {
		fmt.Fprintf(tw, "%s\tversion %d\texpires %s\n", role, versions[role], expires[role].Format(time.RFC3339))
	}
	tw.Flush()
}

func addReleaseCommand() *cobra.Command {
	var (
		dir, variant, arch, version, boot, root, hash string
		migrations, transitions                       []string
		migrationsFrom, waves, startAt, maxVersion    string
		keys                                          signingFlags
	)
	cmd := &cobra.Command{
		Use:   "add-release --repo DIR --variant V --arch A --version X.Y.Z --boot F --root F --hash F",
		Short: "Publish a release: compressed images and migrations, manifest.json, re-signed metadata",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rel := Release{Variant: variant, Arch: arch, Boot: boot, Root: root, Hash: hash}
			var err error
			if rel.Version, err = parseVersion("--version", version); err != nil {
				return cli.UsageError{Err: err}
			}
			if maxVersion != "" {
				mv, err := parseVersion("--max-version", maxVersion)
				if err != nil {
					return cli.UsageError{Err: err}
				}
				rel.MaxVersion = &mv
			}
			for _, m := range migrations {
				name, path, ok := strings.Cut(m, "=")
				if !ok || name == "" || path == "" {
					return cli.UsageError{Err: fmt.Errorf("--migration %q is not NAME=FILE", m)}
				}
				rel.Migrations = append(rel.Migrations, Migration{Name: name, Path: path})
			}
			rel.Transitions = map[manifest.Transition][]string{}
			if migrationsFrom != "" {
				b, err := os.ReadFile(migrationsFrom)
				if err != nil {
					return fmt.Errorf("--migrations-from: %w", err)
				}
				if rel.Transitions, err = ParseMigrationsTOML(b); err != nil {
					return fmt.Errorf("%s: %w", migrationsFrom, err)
				}
				rel.ReplaceMigrations = true
			}
			for _, s := range transitions {
				t, names, err := ParseTransitionFlag(s)
				if err != nil {
					return cli.UsageError{Err: fmt.Errorf("--transition: %w", err)}
				}
				rel.Transitions[t] = names
			}
			if rel.Waves, err = LoadWaves(waves); err != nil {
				return cli.UsageError{Err: fmt.Errorf("--waves: %w", err)}
			}
			if startAt != "" {
				if rel.StartAt, err = parseStartAt(startAt, time.Now()); err != nil {
					return cli.UsageError{Err: err}
				}
			}
			r, err := keys.open(dir, RoleTargets, RoleSnapshot, RoleTimestamp)
			if err != nil {
				return err
			}
			pub, err := r.AddRelease(cmd.Context(), rel)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s %s %s to %s\n", variant, arch, rel.Version, dir)
			printPublished(cmd.OutOrStdout(), pub)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "repo", "", "repository directory")
	f.StringVar(&variant, "variant", "", "variant of the release (e.g. metal-dev)")
	f.StringVar(&arch, "arch", "", "architecture of the release (x86_64, aarch64)")
	f.StringVar(&version, "version", "", "version of the release, X.Y.Z")
	f.StringVar(&maxVersion, "max-version", "", "max_version for the variant and arch (default: the higher of --version and the current one)")
	f.StringVar(&boot, "boot", "", "boot partition image (uncompressed)")
	f.StringVar(&root, "root", "", "root partition image (uncompressed)")
	f.StringVar(&hash, "hash", "", "dm-verity hash partition image (uncompressed)")
	f.StringArrayVar(&migrations, "migration", nil, "NAME=FILE: publish a migration binary as target NAME.zst (repeatable)")
	f.StringVar(&migrationsFrom, "migrations-from", "", "TOML file whose [migrations] table replaces the manifest's migrations")
	f.StringArrayVar(&transitions, "transition", nil, "\"(FROM, TO)=TARGET,...\": set one hop of the manifest's migrations (repeatable; empty list = no migration)")
	f.StringVar(&waves, "waves", "default", "wave policy: default, accelerated, ohno, slow-roll, none, or a wave TOML file")
	f.StringVar(&startAt, "start-at", "", "when the waves start: RFC 3339 time or an offset like \"in 2 hours\" (default now)")
	keys.add(cmd)
	for _, req := range []string{"repo", "variant", "arch", "version", "boot", "root", "hash"} {
		cmd.MarkFlagRequired(req)
	}
	return cmd
}

// parseStartAt reads an RFC 3339 time or an offset from now.
func parseStartAt(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	d, err := ParseOffset(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--start-at %q is neither an RFC 3339 time nor an offset like \"in 2 hours\"", s)
	}
	return now.Add(d).UTC(), nil
}

func refreshCommand() *cobra.Command {
	var (
		dir                   string
		unsafe, timestampOnly bool
		keys                  signingFlags
	)
	cmd := &cobra.Command{
		Use:   "refresh --repo DIR --targets-key K --snapshot-key K --timestamp-key K",
		Short: "Re-sign targets, snapshot and timestamp with new versions and expirations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			need := []string{RoleTargets, RoleSnapshot, RoleTimestamp}
			if timestampOnly {
				need = []string{RoleTimestamp}
			}
			r, err := keys.open(dir, need...)
			if err != nil {
				return err
			}
			pub, err := r.Refresh(cmd.Context(), RefreshOptions{TimestampOnly: timestampOnly, Unsafe: unsafe})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "refreshed %s\n", dir)
			printPublished(cmd.OutOrStdout(), pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "repo", "", "repository directory")
	cmd.Flags().BoolVar(&unsafe, "unsafe-refresh", false, "re-sign even if the repository has already expired")
	cmd.Flags().BoolVar(&timestampOnly, "timestamp-only", false, "re-sign only timestamp.json (needs only --timestamp-key)")
	keys.add(cmd)
	cmd.MarkFlagRequired("repo")
	return cmd
}

func rotateRootCommand() *cobra.Command {
	var (
		dir                                   string
		oldKeys, newKeys                      []string
		threshold                             int
		expires                               string
		newTargets, newSnapshot, newTimestamp []string
		keys                                  signingFlags
	)
	cmd := &cobra.Command{
		Use:   "rotate-root --repo DIR --old-key K --new-root-key K",
		Short: "Write root.json version N+1, signed by the current root keys and the new ones",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var exp Expirations
			if expires != "" {
				d, err := ParseOffset(expires)
				if err != nil || d <= 0 {
					return cli.UsageError{Err: fmt.Errorf("--expires %q is not a positive duration", expires)}
				}
				exp.Root = d
			}
			// Keys for re-signing the roles whose keys do not change.
			var need []string
			changing := map[string][]string{RoleTargets: newTargets, RoleSnapshot: newSnapshot, RoleTimestamp: newTimestamp}
			anyChange := len(newTargets)+len(newSnapshot)+len(newTimestamp) > 0
			if anyChange {
				for _, role := range []string{RoleTargets, RoleSnapshot, RoleTimestamp} {
					if len(changing[role]) == 0 {
						need = append(need, role)
					}
				}
			}
			r, err := keys.open(dir, need...)
			if err != nil {
				return err
			}
			r.opts.Expires.Root = exp.withDefaults().Root
			opts := RotateOptions{NewRoot: RoleKeys{Threshold: threshold}}
			if opts.OldKeys, err = loadRoleKeys("old root", oldKeys); err != nil {
				return err
			}
			if opts.NewRoot.Keys, err = loadRoleKeys("new root", newKeys); err != nil {
				return err
			}
			for role, dst := range map[string]**RoleKeys{RoleTargets: &opts.Targets, RoleSnapshot: &opts.Snapshot, RoleTimestamp: &opts.Timestamp} {
				if len(changing[role]) == 0 {
					continue
				}
				ks, err := loadRoleKeys("new "+role, changing[role])
				if err != nil {
					return err
				}
				*dst = &RoleKeys{Keys: ks}
			}
			pub, err := r.RotateRoot(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d.root.json in %s\n", pub.RootVersion, r.MetadataDir())
			printPublished(cmd.OutOrStdout(), pub)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "repo", "", "repository directory")
	f.StringArrayVar(&oldKeys, "old-key", nil, "private key of the current root role (repeatable; at least its threshold)")
	f.StringArrayVar(&newKeys, "new-root-key", nil, "key of the new root role (repeatable; at least the threshold must be private)")
	f.IntVar(&threshold, "threshold", 0, "signatures the new root role needs (default: the current threshold)")
	f.StringVar(&expires, "expires", "", "lifetime of the new root.json (default 52 weeks)")
	f.StringArrayVar(&newTargets, "new-targets-key", nil, "replace the targets role's keys (private; repeatable)")
	f.StringArrayVar(&newSnapshot, "new-snapshot-key", nil, "replace the snapshot role's keys (private; repeatable)")
	f.StringArrayVar(&newTimestamp, "new-timestamp-key", nil, "replace the timestamp role's keys (private; repeatable)")
	addRoleFlags(cmd, RoleTargets, &keys.targets, false, "private (to re-sign when another role's keys are replaced)")
	addRoleFlags(cmd, RoleSnapshot, &keys.snapshot, false, "private (to re-sign when another role's keys are replaced)")
	addRoleFlags(cmd, RoleTimestamp, &keys.timestamp, false, "private (to re-sign when another role's keys are replaced)")
	for _, req := range []string{"repo", "old-key", "new-root-key"} {
		cmd.MarkFlagRequired(req)
	}
	return cmd
}

func validateCommand() *cobra.Command {
	var dir, metaURL, targetsURL, trusted, at string
	cmd := &cobra.Command{
		Use:   "validate (--repo DIR | --metadata-url URL --targets-url URL --root root.json)",
		Short: "Load a repository as a node would and check every target",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := ValidateOptions{Dir: dir, MetadataURL: metaURL, TargetsURL: targetsURL, TrustedRoot: trusted}
			if (dir == "") == (metaURL == "" && targetsURL == "") || (dir == "" && (metaURL == "" || targetsURL == "")) {
				return cli.UsageError{Err: fmt.Errorf("give --repo, or both --metadata-url and --targets-url")}
			}
			if dir == "" && trusted == "" {
				return cli.UsageError{Err: fmt.Errorf("--root is required with --metadata-url")}
			}
			if at != "" {
				t, err := parseStartAt(at, time.Now())
				if err != nil {
					return cli.UsageError{Err: fmt.Errorf("--at: %w", err)}
				}
				opts.At = t
			}
			rep, err := Validate(cmd.Context(), opts)
			out := cmd.OutOrStdout()
			if rep != nil {
				printVersions(out, rep.Versions, rep.Expires)
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				for _, t := range rep.Targets {
					if t.Err != nil {
						fmt.Fprintf(tw, "FAIL\t%s\t%d bytes\t%v\n", t.Name, t.Length, t.Err)
					} else {
						fmt.Fprintf(tw, "ok\t%s\t%d bytes\n", t.Name, t.Length)
					}
				}
				tw.Flush()
				if rep.Manifest != nil {
					printManifest(out, rep.Manifest)
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "repository is valid")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "repo", "", "repository directory")
	f.StringVar(&metaURL, "metadata-url", "", "metadata base URL of a hosted repository")
	f.StringVar(&targetsURL, "targets-url", "", "targets base URL of a hosted repository")
	f.StringVar(&trusted, "root", "", "trusted root.json to start the chain from (default: the repository's 1.root.json)")
	f.StringVar(&at, "at", "", "check expirations at this time (RFC 3339, or an offset like \"in 3 days\")")
	return cmd
}

func printManifest(out io.Writer, mf *manifest.Manifest) {
	fmt.Fprintf(out, "%s: %d update(s), %d migration hop(s)\n", ManifestTarget, len(mf.Updates), len(mf.Migrations))
	for _, u := range mf.Updates {
		fmt.Fprintf(out, "  %s %s %s (max %s, %d wave(s))\n", u.Variant, u.Arch, u.Version, u.MaxVersion, len(u.Waves))
	}
	ts := make([]manifest.Transition, 0, len(mf.Migrations))
	for t := range mf.Migrations {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].From.Compare(ts[j].From) < 0 })
	for _, t := range ts {
		fmt.Fprintf(out, "  %s: %s\n", t, strings.Join(mf.Migrations[t], ", "))
	}
}

func serveCommand() *cobra.Command {
	var dir, listen string
	cmd := &cobra.Command{
		Use:   "serve --repo DIR [--listen ADDR]",
		Short: "Serve a repository's metadata/ and targets/ over HTTP until interrupted",
		Long: `serve is a static web server for a repository: /metadata/ is the nodes'
settings.updates.metadata-base-url and /targets/ their targets-base-url. It serves files
only (no listings, nothing whose name starts with a dot). For development and tests; any
static file server will do in production.`,
		Example: `  gantry repo serve --repo repo --listen 127.0.0.1:8000
  # a node under gantry run reaches the host's 127.0.0.1 as 10.0.2.2:
  #   metadata-base-url = "http://10.0.2.2:8000/metadata/"
  #   targets-base-url  = "http://10.0.2.2:8000/targets/"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !hasRepository(dir) {
				return fmt.Errorf("%s holds no repository (no %s/root.json)", dir, MetadataDirName)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			base := "http://" + ln.Addr().String()
			fmt.Fprintf(cmd.OutOrStdout(), "serving %s\nmetadata  %s/%s/\ntargets   %s/%s/\n", dir, base, MetadataDirName, base, TargetsDirName)
			return Serve(cmd.Context(), dir, ln)
		},
	}
	cmd.Flags().StringVar(&dir, "repo", "", "repository directory")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8000", "address to listen on")
	cmd.MarkFlagRequired("repo")
	return cmd
}

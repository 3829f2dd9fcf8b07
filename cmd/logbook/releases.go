package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/logbook-fleet/logbook/actors/release"
	logbookv1 "github.com/logbook-fleet/logbook/proto/logbook/v1"
)

func newReleaseCommand(a *app) *cobra.Command {
	return newGroup("release", "Publish, list, show and yank releases",
		`A release is immutable: a version, the git commit of every repository it
was built from, one signed artifact per platform and the manifest of
processes it runs. Its stream is release-<version>. A yanked release can no
longer be promoted or rolled back to.`,
		newReleasePublishCommand(a), newReleaseLsCommand(a), newReleaseShowCommand(a), newReleaseYankCommand(a),
	)
}

func newReleasePublishCommand(a *app) *cobra.Command {
	var (
		file, manifest, keyFile string
		repos, artifacts        []string
	)
	c := &cobra.Command{
		Use:   "publish [VERSION] [-f release.yaml] [--repo NAME=GITHASH]... [--artifact PLATFORM=URL,file=PATH]... [--manifest FILE] [--signing-key KEY]",
		Short: "Publish a release",
		Long: `publish records a release. Describe it with flags, with a file (-f), or
both (flags add to the file; VERSION overrides the file's version).

--artifact PLATFORM=URL,KEY=VALUE,... describes the binary for one platform,
with these keys:
  file=PATH      a local copy of the binary: its sha256 and size are computed
  sha256=HEX     its SHA-256 (64 hex digits) and
  size=BYTES     its size, when there is no local copy
  sig=SIG        its ed25519 signature (base64 or hex) over the artifact
                 descriptor, when it is signed elsewhere
Without sig, --signing-key signs each artifact. The key file is an ed25519
private key: PEM (openssl genpkey -algorithm ed25519 -out release.key) or
the 32-byte seed or 64-byte key, raw, hex or base64.

The file (YAML or JSON) holds the whole release; paths in "file" are
relative to it, and restartPolicy may be always, on-failure or never:

  version: 2026.11.3
  repos:
    logbook: 4f3c2a1b9d0e8f7a6b5c4d3e2f1a0b9c8d7e6f5a
  artifacts:
    - platform: linux/arm64
      url: https://dl.example.com/logbook-agent-2026.11.3-linux-arm64
      file: dist/logbook-agent-linux-arm64
  manifest:
    - method: syslogforwarding
      domain: nginx
      command: /usr/bin/logforward
      args: [--target, udp://logs.example.com:514]
      restartPolicy: on-failure

--manifest FILE takes just the manifest list, in the same form.`,
		Example: `  # from flags: compute the digest from a local build and sign it
  logbook release publish 2026.11.3 --repo logbook=4f3c2a1b9d0e8f7a6b5c4d3e2f1a0b9c8d7e6f5a \
      --artifact linux/arm64=https://dl.example.com/agent-arm64,file=dist/agent-arm64 \
      --signing-key release.key

  # from a file
  logbook release publish -f release.yaml --signing-key release.key`,
		Args: checkedArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var key ed25519.PrivateKey
			if keyFile != "" {
				k, err := loadSigningKey(keyFile)
				if err != nil {
					return err
				}
				key = k
			}
			rel, err := buildRelease(args, file, repos, artifacts, manifest, key)
			if err != nil {
				return newUsageError(cmd, err)
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.releases.PublishRelease, &logbookv1.PublishReleaseRequest{Release: rel})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "release/"+rel.GetVersion(), "published")
				return nil
			})
		},
	}
	f := c.Flags()
	f.StringVarP(&file, "file", "f", "", "release description, YAML or JSON (- for standard input)")
	f.StringArrayVar(&repos, "repo", nil, "repository NAME=GITHASH the release was built from (repeatable)")
	f.StringArrayVar(&artifacts, "artifact", nil, "artifact PLATFORM=URL,file=PATH or PLATFORM=URL,sha256=HEX,size=N[,sig=SIG] (repeatable)")
	f.StringVar(&manifest, "manifest", "", "file with the release's process manifest, YAML or JSON")
	f.StringVar(&keyFile, "signing-key", "", "ed25519 private key file to sign unsigned artifacts with")
	return c
}

// buildRelease assembles the PublishRelease from the command line: the -f
// file, then the positional version and the flags. Unsigned artifacts are
// signed with key when it is set.
func buildRelease(args []string, file string, repos, artifacts []string, manifest string, key ed25519.PrivateKey) (*logbookv1.PublishRelease, error) {
	rel := &logbookv1.PublishRelease{}
	if file != "" {
		b, err := readInput(file)
		if err != nil {
			return nil, err
		}
		if rel, err = decodeRelease(b, filepath.Dir(file)); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	if len(args) == 1 {
		rel.Version = args[0]
	}
	if rel.GetVersion() == "" {
		return nil, errors.New("missing VERSION (an argument or version: in -f)")
	}
	if len(repos) > 0 {
		m, err := parseKeyValues("--repo", repos)
		if err != nil {
			return nil, err
		}
		if rel.Repos == nil {
			rel.Repos = map[string]string{}
		}
		for k, v := range m {
			rel.Repos[k] = v
		}
	}
	for _, s := range artifacts {
		art, err := parseArtifact(s)
		if err != nil {
			return nil, err
		}
		rel.Artifacts = append(rel.Artifacts, art)
	}
	if manifest != "" {
		b, err := readInput(manifest)
		if err != nil {
			return nil, err
		}
		procs, err := decodeManifest(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", manifest, err)
		}
		rel.Manifest = append(rel.Manifest, procs...)
	}
	if len(rel.GetRepos()) == 0 {
		return nil, errors.New("a release needs at least one --repo NAME=GITHASH")
	}
	if len(rel.GetArtifacts()) == 0 {
		return nil, errors.New("a release needs at least one --artifact")
	}
	for _, art := range rel.GetArtifacts() {
		if len(art.GetSignature()) > 0 {
			continue
		}
		if key == nil {
			return nil, fmt.Errorf("artifact %s is not signed: pass --signing-key, or sig= in --artifact", art.GetPlatform())
		}
		art.Signature = release.Sign(key, rel.GetVersion(), art)
	}
	return rel, nil
}

// readInput reads a file, or standard input for "-".
func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

// parseArtifact parses an --artifact: "PLATFORM=URL" followed by
// ",key=value" pairs (file, sha256, size, sig). The file is read to compute
// the sha256 and size.
func parseArtifact(s string) (*logbookv1.ReleaseArtifact, error) {
	parts := strings.Split(s, ",")
	platform, url, ok := strings.Cut(parts[0], "=")
	if !ok || platform == "" || url == "" {
		return nil, fmt.Errorf("--artifact %q: want PLATFORM=URL,file=PATH or PLATFORM=URL,sha256=HEX,size=N", s)
	}
	art := &logbookv1.ReleaseArtifact{Platform: platform, Url: url}
	var file string
	seen := map[string]bool{}
	for _, kv := range parts[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("--artifact %q: %q: want key=value (file, sha256, size or sig)", s, kv)
		}
		if seen[k] {
			return nil, fmt.Errorf("--artifact %q: %s is given twice", s, k)
		}
		seen[k] = true
		switch k {
		case "file":
			file = v
		case "sha256":
			art.Sha256 = strings.ToLower(v)
		case "size":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("--artifact %q: size %q: want a positive number of bytes", s, v)
			}
			art.Size = n
		case "sig":
			sig, err := decodeBinary(v)
			if err != nil || len(sig) != ed25519.SignatureSize {
				return nil, fmt.Errorf("--artifact %q: sig: want a %d-byte ed25519 signature in base64 or hex", s, ed25519.SignatureSize)
			}
			art.Signature = sig
		default:
			return nil, fmt.Errorf("--artifact %q: unknown key %q (want file, sha256, size or sig)", s, k)
		}
	}
	if file != "" {
		if art.Sha256 != "" || art.Size != 0 {
			return nil, fmt.Errorf("--artifact %q: give file or sha256 and size, not both", s)
		}
		if err := digestFile(file, art); err != nil {
			return nil, fmt.Errorf("--artifact %q: %w", s, err)
		}
	}
	if art.Sha256 == "" || art.Size == 0 {
		return nil, fmt.Errorf("--artifact %q: want file=PATH, or both sha256= and size=", s)
	}
	return art, nil
}

// digestFile sets art's sha256 and size from the file at path.
func digestFile(path string, art *logbookv1.ReleaseArtifact) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if n == 0 {
		return fmt.Errorf("%s is empty", path)
	}
	art.Sha256, art.Size = hex.EncodeToString(h.Sum(nil)), uint64(n)
	return nil
}

// decodeBinary decodes hex or standard/URL base64 (padded or not).
func decodeBinary(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("neither hex nor base64")
}

// loadSigningKey reads an ed25519 private key: PEM PKCS#8, or the 32-byte
// seed or 64-byte key as raw bytes, hex or base64.
func loadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--signing-key: %w", err)
	}
	key, err := parseSigningKey(b)
	if err != nil {
		return nil, fmt.Errorf("--signing-key %s: %w", path, err)
	}
	return key, nil
}

func parseSigningKey(b []byte) (ed25519.PrivateKey, error) {
	if block, _ := pem.Decode(b); block != nil {
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		key, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("a %T key, want ed25519", k)
		}
		return key, nil
	}
	raw := b
	if len(raw) != ed25519.SeedSize && len(raw) != ed25519.PrivateKeySize {
		d, err := decodeBinary(string(b))
		if err != nil {
			return nil, errors.New("want a PEM ed25519 key, or a 32-byte seed or 64-byte key (raw, hex or base64)")
		}
		raw = d
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		key := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !key.Equal(ed25519.PrivateKey(raw)) {
			return nil, errors.New("the key's public half does not match its seed")
		}
		return key, nil
	}
	return nil, fmt.Errorf("%d bytes, want a 32-byte seed or a 64-byte key", len(raw))
}

// decodeRelease decodes a release file (YAML or JSON) into a PublishRelease.
// It accepts, beyond protobuf JSON, "file" in artifacts (relative to dir)
// and short restart policies ("on-failure").
func decodeRelease(b []byte, dir string) (*logbookv1.PublishRelease, error) {
	var doc map[string]any
	if err := yamlToJSONValue(b, &doc); err != nil {
		return nil, err
	}
	if arts, ok := doc["artifacts"].([]any); ok {
		for i, x := range arts {
			m, ok := x.(map[string]any)
			if !ok {
				continue
			}
			path, ok := m["file"].(string)
			if !ok {
				continue
			}
			delete(m, "file")
			if !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			var art logbookv1.ReleaseArtifact
			if err := digestFile(path, &art); err != nil {
				return nil, fmt.Errorf("artifacts[%d]: %w", i, err)
			}
			m["sha256"], m["size"] = art.Sha256, strconv.FormatUint(art.Size, 10)
		}
	}
	if procs, ok := doc["manifest"].([]any); ok {
		normalizeManifest(procs)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	rel := &logbookv1.PublishRelease{}
	if err := protojson.Unmarshal(j, rel); err != nil {
		return nil, err
	}
	return rel, nil
}

// decodeManifest decodes a manifest file: a list of processes, or an object
// with a "manifest" list.
func decodeManifest(b []byte) ([]*logbookv1.ReleaseProcess, error) {
	var doc any
	if err := yamlToJSONValue(b, &doc); err != nil {
		return nil, err
	}
	if m, ok := doc.(map[string]any); ok {
		doc = m["manifest"]
	}
	procs, ok := doc.([]any)
	if !ok {
		return nil, errors.New("want a list of processes (method, domain, command, args, restartPolicy)")
	}
	normalizeManifest(procs)
	j, err := json.Marshal(map[string]any{"manifest": procs})
	if err != nil {
		return nil, err
	}
	var rel logbookv1.PublishRelease
	if err := protojson.Unmarshal(j, &rel); err != nil {
		return nil, err
	}
	return rel.GetManifest(), nil
}

// normalizeManifest rewrites short restart policies ("always",
// "on-failure", "never") to their enum names.
func normalizeManifest(procs []any) {
	for _, x := range procs {
		m, ok := x.(map[string]any)
		if !ok {
			continue
		}
		for _, k := range []string{"restartPolicy", "restart_policy", "restart"} {
			s, ok := m[k].(string)
			if !ok {
				continue
			}
			delete(m, k)
			if !strings.HasPrefix(s, "RELEASE_RESTART_POLICY_") {
				s = "RELEASE_RESTART_POLICY_" + strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
			}
			m["restartPolicy"] = s
		}
	}
}

// yamlToJSONValue decodes YAML (or JSON, a subset) into v with JSON
// semantics.
func yamlToJSONValue(b []byte, v any) error {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return err
	}
	return json.Unmarshal(j, v)
}

func newReleaseLsCommand(a *app) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List releases",
		Example: `  logbook release ls
  logbook release ls --all`,
		Args: checkedArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				req := &logbookv1.ListReleasesRequest{IncludeYanked: all}
				var rels []*logbookv1.ReleaseSummary
				for {
					res, err := unary(ctx, c, c.releases.ListReleases, req)
					if err != nil {
						return err
					}
					rels = append(rels, res.GetReleases()...)
					if res.GetNext() == 0 || len(res.GetReleases()) == 0 {
						break
					}
					req.After = res.GetNext()
				}
				if !p.table() {
					p.message(&logbookv1.ListReleasesResponse{Releases: rels})
					return nil
				}
				if len(rels) == 0 {
					p.note("No releases found.")
					return nil
				}
				rows := make([][]string, len(rels))
				for i, r := range rels {
					status := "published"
					if r.GetYanked() {
						status = "yanked: " + r.GetYankReason()
					}
					rows[i] = []string{r.GetVersion(), ago(r.GetPublishedAt(), p.now), r.GetPublishedBy(), strings.Join(r.GetPlatforms(), ","), status}
				}
				p.rows([]string{"VERSION", "PUBLISHED", "BY", "PLATFORMS", "STATUS"}, rows)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&all, "all", false, "include yanked releases")
	return c
}

func newReleaseShowCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "show VERSION",
		Short:   "Show a release: repositories, artifacts and manifest",
		Example: `  logbook release show 2026.11.3`,
		Args:    exactArgs("VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				return show(ctx, c, p, c.releases.GetRelease, &logbookv1.GetReleaseRequest{Version: args[0]}, func(res *logbookv1.GetReleaseResponse) error {
					printRelease(p, res.GetState())
					return nil
				})
			})
		},
	}
}

func printRelease(p *display, r *logbookv1.ReleaseState) {
	status := enumText(r.GetStatus())
	if status == "" {
		status = "not published"
	}
	kv := [][2]string{
		{"Version", r.GetVersion()},
		{"Status", status},
		{"Published", joinNonEmpty(stamp(r.GetPublishedAt(), p.now), "by", r.GetPublishedBy())},
	}
	if r.GetStatus() == logbookv1.ReleaseStatus_RELEASE_STATUS_YANKED {
		kv = append(kv, [2]string{"Yanked", joinNonEmpty(stamp(r.GetYankedAt(), p.now), "by", r.GetYankedBy())}, [2]string{"Yank reason", r.GetYankReason()})
	}
	if k := r.GetSignerPublicKey(); len(k) > 0 {
		kv = append(kv, [2]string{"Signer key", logbookv1.KeyID(k)})
	}
	p.fields(kv)
	if len(r.GetRepos()) > 0 {
		p.f("\nRepositories:\n")
		var rows [][]string
		for _, k := range sortedKeys(r.GetRepos()) {
			rows = append(rows, []string{k, r.GetRepos()[k]})
		}
		p.rows([]string{"NAME", "COMMIT"}, rows)
	}
	if len(r.GetArtifacts()) > 0 {
		p.f("\nArtifacts:\n")
		var rows [][]string
		for _, x := range r.GetArtifacts() {
			rows = append(rows, []string{x.GetPlatform(), fmt.Sprint(x.GetSize()), x.GetSha256(), x.GetUrl()})
		}
		p.rows([]string{"PLATFORM", "SIZE", "SHA256", "URL"}, rows)
	}
	if len(r.GetManifest()) > 0 {
		p.f("\nManifest:\n")
		var rows [][]string
		for _, x := range r.GetManifest() {
			rows = append(rows, []string{x.GetMethod(), x.GetDomain(), strings.Join(append([]string{x.GetCommand()}, x.GetArgs()...), " "), enumText(x.GetRestartPolicy())})
		}
		p.rows([]string{"METHOD", "DOMAIN", "COMMAND", "RESTART"}, rows)
	}
}

func newReleaseYankCommand(a *app) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "yank VERSION --reason TEXT",
		Short: "Withdraw a release",
		Long: `yank withdraws a published release: it can no longer be promoted, rolled back
to or pinned. Units already running it keep it until their channel moves.`,
		Example: `  logbook release yank 2026.11.3 --reason "crashes on arm64"`,
		Args:    exactArgs("VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageErrorf(cmd, "--reason is required: say why the release is withdrawn")
			}
			return a.run(cmd, func(ctx context.Context, c *client, p *display) error {
				res, err := unary(ctx, c, c.releases.YankRelease, &logbookv1.YankReleaseRequest{Version: args[0], Reason: reason})
				if err != nil {
					return err
				}
				p.written(res, res.GetAppended(), "release/"+args[0], "yanked")
				return nil
			})
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why the release is withdrawn (required)")
	return c
}

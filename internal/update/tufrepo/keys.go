package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// PublicKeySuffix is appended to a private key's path to name its public key.
const PublicKeySuffix = ".pub"

// Key is one signing key of the repository, read from a file: an ed25519
// private key (PKCS #8, PEM "PRIVATE KEY"), which can sign, or its public
// key (PKIX, PEM "PUBLIC KEY"), which can only be listed in root.json.
type Key struct {
	// Path is the file the key was read from (for error messages).
	Path string
	// ID is the TUF key ID: the sha256 of the key's canonical JSON.
	ID string
	// Meta is the key as root.json lists it.
	Meta   *metadata.Key
	signer signature.Signer
}

// CanSign reports whether the key holds a private key.
func (k *Key) CanSign() bool { return k.signer != nil }

func (k *Key) String() string { return fmt.Sprintf("%s (key ID %.12s…)", k.Path, k.ID) }

// KeyPair names the two files GenerateKey writes.
type KeyPair struct {
	Private, Public, ID string
}

// GenerateKey writes a new ed25519 key pair: the private key to path (mode
// 0600) and the public key to path+".pub" (mode 0644). It refuses to
// overwrite either file.
func GenerateKey(path string) (KeyPair, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return WriteKey(path, priv, pub)
}

// WriteKey writes priv to path (mode 0600) and pub to path+".pub", refusing
// to overwrite either file. Tests of other packages can use it with keys
// from a fixed seed.
func WriteKey(path string, priv ed25519.PrivateKey, pub ed25519.PublicKey) (KeyPair, error) {
	pubPath := path + PublicKeySuffix
	for _, p := range []string{path, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return KeyPair{}, fmt.Errorf("key file %s already exists; not overwriting it", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return KeyPair{}, fmt.Errorf("key file %s: %w", p, err)
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode public key: %w", err)
	}
	id, err := keyID(pub)
	if err != nil {
		return KeyPair{}, err
	}
	if err := writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return KeyPair{}, err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		os.Remove(path)
		return KeyPair{}, err
	}
	return KeyPair{Private: path, Public: pubPath, ID: id}, nil
}

// writeNew creates path exclusively with mode perm (whatever the umask)
// and syncs it.
func writeNew(path string, b []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("key file %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("close key file %s: %w", path, err)
	}
	return nil
}

// LoadKey reads a private or public ed25519 key file. A private key file
// must not be readable by group or others.
func LoadKey(path string) (*Key, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("key file %s: not a PEM key", path)
	}
	k := &Key{Path: path}
	var pub crypto.PublicKey
	switch block.Type {
	case "PRIVATE KEY":
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("private key file %s has mode %04o; it must not be readable by group or others (chmod 600)",
				path, st.Mode().Perm())
		}
		p, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", path, err)
		}
		priv, ok := p.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key file %s: a %T, not an ed25519 key", path, p)
		}
		if k.signer, err = signature.LoadED25519Signer(priv); err != nil {
			return nil, fmt.Errorf("key file %s: %w", path, err)
		}
		pub = priv.Public()
	case "PUBLIC KEY":
		p, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", path, err)
		}
		if _, ok := p.(ed25519.PublicKey); !ok {
			return nil, fmt.Errorf("key file %s: a %T, not an ed25519 key", path, p)
		}
		pub = p
	default:
		return nil, fmt.Errorf("key file %s: PEM block %q is neither \"PRIVATE KEY\" nor \"PUBLIC KEY\"", path, block.Type)
	}
	if k.Meta, err = metadata.KeyFromPublicKey(pub); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if k.ID, err = k.Meta.ID(); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// LoadKeys reads each file with LoadKey.
func LoadKeys(paths []string) ([]*Key, error) {
	out := make([]*Key, 0, len(paths))
	for _, p := range paths {
		k, err := LoadKey(p)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func keyID(pub crypto.PublicKey) (string, error) {
	m, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("key ID: %w", err)
	}
	id, err := m.ID()
	if err != nil {
		return "", fmt.Errorf("key ID: %w", err)
	}
	return id, nil
}

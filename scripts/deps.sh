# Installs what building and testing Gantry needs on Debian. Sourced by ./dev
# and .ci/run; idempotent and quiet when everything is already there.

GO_VERSION=1.26.8
GO_ROOT=/usr/local/go

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "deps: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

go_ok() {
  command -v go >/dev/null 2>&1 || return 1
  local v
  v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
  [ "$(printf '%s\n%s\n' "1.26" "$v" | sort -V | head -n1)" = "1.26" ]
}

# install_go fetches the Go toolchain that the Go module proxy publishes as
# the module golang.org/toolchain, so no other download site is needed.
install_go() {
  local arch
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) echo "deps: unsupported arch" >&2; return 1 ;; esac
  local ver="v0.0.1-go${GO_VERSION}.linux-${arch}"
  local proxy="${GOPROXY:-https://proxy.golang.org}"; proxy="${proxy%%,*}"
  local tmp; tmp=$(mktemp -d)
  echo "deps: installing Go ${GO_VERSION} from the module proxy" >&2
  curl -fsSL -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/${ver}.zip"
  unzip -q "$tmp/go.zip" -d "$tmp"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo rm -rf "$GO_ROOT"
  $sudo mv "$tmp/golang.org/toolchain@${ver}" "$GO_ROOT"
  $sudo chmod -R a+rX "$GO_ROOT"
  $sudo find "$GO_ROOT/bin" "$GO_ROOT/pkg/tool" -type f -exec chmod a+x {} +
  rm -rf "$tmp"
}

# install_registry installs CNCF Distribution (Debian's docker-registry),
# the OCI registry that tests and `gantry run` start on loopback with their
# own configuration. The package enables a system-wide registry on :5000;
# when this script installed it, that service is switched off again.
install_registry() {
  dpkg-query -W -f='${Status}' docker-registry 2>/dev/null | grep -q "install ok installed" && return 0
  apt_install docker-registry
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  fi
}

ensure_deps() {
  apt_install make git curl unzip ca-certificates genisoimage xorriso gdisk fdisk \
    qemu-system-x86 qemu-utils erofs-utils cryptsetup-bin e2fsprogs ovmf dosfstools mtools kmod \
    gpg gpgconf gpg-agent iproute2
  install_registry
  export PATH="$PATH:$GO_ROOT/bin:$HOME/go/bin"
  go_ok || install_go
  go_ok || { echo "deps: Go >= 1.26 is not available" >&2; return 1; }
  go mod download
}

#!/usr/bin/env bash
# Run a command on a "host" that looks like a busy container host, to prove the suite hermetic.
#
#   .ci/host-with-containers.sh COMMAND [ARG...]
#
# Re-executes itself under `unshare -m --propagation private` (root only), so nothing below is
# ever mounted in the real host's namespace; when this script ends, its namespace and every
# mount in it vanish.  Inside that namespace, before COMMAND runs:
#
#  * /var/lib becomes an overlay (lower: the real /var/lib, read-only; upper: a tmpfs), like an
#    overlayroot/live-CD host.  That lets /var/lib/docker exist without writing a byte to the
#    host's disk even where Docker is not installed; the real /var/lib stays visible.
#  * /var/lib/docker is its own tmpfs (many hosts give Docker its own filesystem), laid out like
#    Docker's overlay2 driver: image layers <64 hex>/diff, `l/<26 chars>` short-name symlinks,
#    and one running container's overlay at /var/lib/docker/overlay2/<64 hex>/merged whose
#    lowerdir names the `l/` symlinks, exactly as dockerd mounts it (in the host's namespace),
#    and a container process in a mount namespace of its own whose root is that overlay.
#  * In the background, "containers" keep coming and going: every second a new one unshares a
#    further mount namespace, mounts its own overlay (same image, a fresh container layer),
#    bind-mounts /usr read-only into it (so it has binaries), pivot_root()s into it, detaches the
#    old root and sleeps; then the previous one is killed and its layer dir removed.  Their
#    overlays exist only in their own namespaces, so the namespace COMMAND runs in keeps a fixed
#    mount table while namespaces appear and vanish all around it.
#
# Every test scenario made with `unshare -m` inside COMMAND starts as a copy of this namespace,
# overlays included: that is what a test must not trip over.  COMMAND's exit status is returned;
# the churn is stopped and the scratch dir (/tmp/ci-host-containers.*) removed in every case.
set -euo pipefail

if [[ "${OVLINSPECT_CI_HOST_NS:-}" != "$$" ]]; then
    if (($# == 0)); then
        echo "usage: $0 COMMAND [ARG...]" >&2
        exit 2
    fi
    if ((EUID != 0)); then
        echo "$0: must run as root (it builds overlay mounts in a private namespace)" >&2
        exit 2
    fi
    # unshare execs this script in the new namespace with the same pid: mark it as inside.
    exec env OVLINSPECT_CI_HOST_NS=$$ unshare -m --propagation private -- bash "$0" "$@"
fi
unset OVLINSPECT_CI_HOST_NS

D=/var/lib/docker
O=$D/overlay2

hexid() { printf '%s' "$1" | sha256sum | cut -c1-64; }
shortid() { printf '%s' "$1" | sha256sum | cut -c1-16 | base32 | cut -c1-26; }

scratch=$(mktemp -d /tmp/ci-host-containers.XXXXXX)
churn_pid=
running_pid=
cleanup() {
    local rc=$?
    if [[ -n "$churn_pid" ]]; then
        kill -TERM "$churn_pid" 2>/dev/null || true
        wait "$churn_pid" 2>/dev/null || true
    fi
    if [[ -n "$running_pid" ]]; then
        { kill -KILL "$running_pid"; wait "$running_pid"; } 2>/dev/null || true
    fi
    # Only this namespace sees these mounts; detach them so the host's temp dir can go.
    umount -l "$scratch" 2>/dev/null || true
    rmdir "$scratch" 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- the host: /var/lib as an overlay, /var/lib/docker on its own tmpfs ---------------------------
mount -t tmpfs -o mode=700 ci-host "$scratch"
mkdir "$scratch/varlib-upper" "$scratch/varlib-work"
if ! mount -t overlay ci-varlib \
        -o "lowerdir=/var/lib,upperdir=$scratch/varlib-upper,workdir=$scratch/varlib-work" /var/lib
then
    # The real /var/lib cannot be an overlay lower here: hide it behind a tmpfs instead.
    echo "host-with-containers: /var/lib cannot be an overlay lower; using a tmpfs" >&2
    mount -t tmpfs -o mode=755 ci-varlib /var/lib
fi
mkdir -p "$D"
mount -t tmpfs -o mode=710 docker "$D"
mkdir -p "$O/l"

# Image layers: <id>/diff with a `link` file naming its short symlink in l/, as overlay2 has.
image=()
for n in 0 1 2; do
    id=$(hexid "ci-image-layer-$n")
    short=$(shortid "ci-image-layer-$n")
    mkdir -p "$O/$id/diff/etc" "$O/$id/diff/usr" "$O/$id/work"
    printf '%s' "$short" >"$O/$id/link"
    ln -s "../$id/diff" "$O/l/$short"
    echo "layer $n" >"$O/$id/diff/etc/layer-$n"
    image=("$O/l/$short" "${image[@]}")
done
base=$(hexid ci-image-layer-0)
printf 'NAME="ci image"\nID=ci\n' >"$O/$base/diff/etc/os-release"
for link in bin:usr/bin lib:usr/lib lib64:usr/lib64 sbin:usr/sbin; do
    ln -s "${link#*:}" "$O/$base/diff/${link%%:*}"
done
mkdir -p "$O/$base/diff/tmp" "$O/$base/diff/proc"
lower_image=$(IFS=:; echo "${image[*]}")

# A container: its -init layer and its own layer; prints the overlay options for it.
container_layers() {
    local id=$1 init short ishort
    init="$id-init"
    short=$(shortid "$id")
    ishort=$(shortid "$init")
    mkdir -p "$O/$init/diff/etc" "$O/$init/work" "$O/$id/diff" "$O/$id/work" "$O/$id/merged"
    printf '%s' "$ishort" >"$O/$init/link"
    printf '%s' "$short" >"$O/$id/link"
    ln -sfn "../$init/diff" "$O/l/$ishort"
    ln -sfn "../$id/diff" "$O/l/$short"
    echo "$id" | cut -c1-12 >"$O/$init/diff/etc/hostname"
    printf 'lowerdir=%s,upperdir=%s,workdir=%s' \
        "$O/l/$ishort:$lower_image" "$O/$id/diff" "$O/$id/work"
}

container_remove() {
    local id=$1
    rm -f "$O/l/$(shortid "$id")" "$O/l/$(shortid "$id-init")"
    rm -rf "${O:?}/$id" "${O:?}/$id-init"
}

# -- containers: each unshares a mount namespace and pivot_root()s into its overlay, as runc does --
run_container() {  # sets $started to the container's pid (a child of the caller)
    local merged=$1 options=${2:-}  # no options: the overlay is already mounted there
    unshare -m --propagation private -- sh -c '
        set -e
        m=$1
        [ -z "$2" ] || mount -t overlay overlay -o "$2" "$m"
        mount --bind -o ro /usr "$m/usr"
        mount -t proc proc "$m/proc"
        cd "$m"
        pivot_root . .
        umount -l /
        cd /
        exec sleep 3600
    ' container "$merged" "$options" </dev/null >/dev/null 2>>"$scratch/containers.log" &
    started=$!
}

# A running container: dockerd mounts its overlay in the host's namespace, runc pivots into it.
running=$(hexid ci-running-container)
mount -t overlay overlay -o "$(container_layers "$running")" "$O/$running/merged"
run_container "$O/$running/merged"
running_pid=$started

# Containers coming and going: their overlays exist only in their own namespaces.
start_container() {
    local id=$1
    run_container "$O/$id/merged" "$(container_layers "$id")"
}

churn() {
    local n=0 up=0 live= live_id= started= id
    stop() {
        { kill -KILL $live $started; wait; } 2>/dev/null
        echo "$n $up" >"$scratch/churned"
        exit 0
    }
    trap stop TERM
    while :; do
        n=$((n + 1))
        id=$(hexid "ci-churn-$$-$n")
        start_container "$id"
        sleep 1 &
        wait $! || true
        # Up means: in a namespace of its own, its root is its overlay.
        if [[ $(readlink "/proc/$started/ns/mnt") != "$(readlink /proc/self/ns/mnt)" ]] &&
            awk '$5 == "/" && / - overlay /' "/proc/$started/mountinfo" | grep -q .; then
            up=$((up + 1))
        fi 2>/dev/null
        if [[ -n "$live" ]]; then  # the previous container goes, the new one stays
            { kill -KILL "$live"; wait "$live"; } 2>/dev/null || true
            container_remove "$live_id"
        fi
        live=$started live_id=$id started=
    done
}
churn &
churn_pid=$!

sleep 1.5

overlays=$(grep -c ' - overlay ' /proc/self/mountinfo || true)
echo "host-with-containers: namespace $(readlink /proc/self/ns/mnt) has $overlays overlay mounts:"
grep ' - overlay ' /proc/self/mountinfo | cut -d' ' -f5 | sed 's/^/  /'
echo "host-with-containers: container pid $running_pid runs in that overlay; others come and go" \
    "in their own namespaces (churn pid $churn_pid)"

began=$SECONDS
set +e
"$@"
rc=$?
set -e
kill -TERM "$churn_pid" 2>/dev/null || true
wait "$churn_pid" 2>/dev/null || true
churn_pid=
read -r started up <"$scratch/churned" || true
echo "host-with-containers: ${started:-0} containers started during the run, ${up:-0} seen up" \
    "(each in its own mount namespace, pivoted into its overlay); exit status $rc"
if ((${up:-0} == 0 && SECONDS - began >= 3 && rc == 0)); then
    echo "host-with-containers: no container ever came up, so the run proves nothing:" >&2
    tail -5 "$scratch/containers.log" >&2 || true
    rc=1
fi
exit "$rc"

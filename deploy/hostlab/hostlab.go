// Package hostlab boots real Debian hosts on this machine for the deployment kit's tests:
// each host is a Debian bookworm tree booted by systemd-nspawn with systemd as its PID 1, an
// sshd the tests log in to with a key, an administrator who uses sudo, its own address on a
// private bridge, and a loop device as its data disk at the path a Google Cloud VM has
// (/dev/disk/by-id/google-georaft-data). The Ansible role then runs against them as it runs
// against real VMs: over ssh, with become, and under systemd.
//
// The root filesystem is built once with debootstrap and cached (EnsureImage); every host
// boots an overlay of it, so five hosts cost five small upper directories. Everything a lab
// creates carries its prefix (network namespaces, the bridge, veths, machine names, loop
// device backing files) and Close removes it, as does Cleanup for what a killed test left.
//
// It needs root, debootstrap, systemd-container (systemd-nspawn), iproute2, util-linux
// (losetup), openssh-client and overlayfs. The host's own PID 1 need not be systemd and its
// cgroups may be v1.
package hostlab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Suite is the Debian release the hosts run: the one the kit's Terraform boots on Google
// Cloud (debian-cloud/debian-12).
const Suite = "bookworm"

// Packages are installed on top of debootstrap's minbase variant: systemd as init, sshd and
// what Ansible needs (python3, sudo), plus what a Google Cloud Debian image has and the role
// relies on (e2fsprogs for mkfs, util-linux for findmnt and mount, chrony, iproute2).
var Packages = []string{"systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "sudo",
	"e2fsprogs", "util-linux", "chrony", "iproute2"}

// imageRevision changes when the customisation below changes, so a cached tree is rebuilt.
const imageRevision = "1"

// AdminUser is the login on every host; it has passwordless sudo, like the account Google
// Cloud's guest agent creates for an ssh key in instance metadata.
const AdminUser = "grk-admin"

// DataDevice is where each host sees its data disk: the path Google Cloud gives a disk
// attached with device_name georaft-data, so the role runs with the same settings.
const DataDevice = "/dev/disk/by-id/google-georaft-data"

// Tools are the commands Start needs on this machine.
var Tools = []string{"debootstrap", "systemd-nspawn", "ip", "losetup", "ssh", "ssh-keygen", "mount", "umount"}

// Missing says what keeps hosts from booting here: not root, or a tool not installed.
func Missing() error {
	if os.Geteuid() != 0 {
		return errors.New("hostlab needs root (network namespaces, loop devices, overlay mounts, systemd-nspawn)")
	}
	var missing []string
	for _, t := range Tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("hostlab needs %s (apt-get install debootstrap systemd-container iproute2 util-linux openssh-client)",
			strings.Join(missing, ", "))
	}
	return nil
}

// Logf receives progress lines.
type Logf func(format string, args ...any)

// EnsureImage returns a cached Debian root filesystem under cacheDir, building it with
// debootstrap first when there is none (about a minute, from Debian's mirror). A build runs
// in a temporary directory renamed into place, so a cached tree is always complete.
func EnsureImage(ctx context.Context, cacheDir, mirror string, logf Logf) (string, error) {
	sum := sha256.Sum256([]byte(Suite + " " + strings.Join(Packages, ",") + " " + imageRevision))
	dir := filepath.Join(cacheDir, Suite+"-"+hex.EncodeToString(sum[:])[:12])
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, nil // another process built it while we waited
	}
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	os.RemoveAll(dir)
	start := time.Now()
	logf("hostlab: building a Debian %s root filesystem with debootstrap into %s", Suite, dir)
	args := []string{"--variant=minbase", "--include=" + strings.Join(Packages, ","), Suite, tmp}
	if mirror != "" {
		args = append(args, mirror)
	}
	if out, err := exec.CommandContext(ctx, "debootstrap", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap %s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 30))
	}
	if err := customiseImage(ctx, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", err
	}
	logf("hostlab: root filesystem built in %v", time.Since(start).Round(time.Second))
	return dir, nil
}

// customiseImage makes the tree what every host shares: the administrator with sudo, an sshd
// that takes keys only and has no host keys yet (each host gets its own), no machine id.
func customiseImage(ctx context.Context, root string) error {
	chroot := func(args ...string) error {
		out, err := exec.CommandContext(ctx, "chroot", append([]string{root}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("chroot %s %s: %v\n%s", root, strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := chroot("useradd", "--create-home", "--shell", "/bin/bash", "--groups", "sudo", AdminUser); err != nil {
		return err
	}
	files := map[string]string{
		"etc/sudoers.d/grk-admin":        AdminUser + " ALL=(ALL) NOPASSWD:ALL\n",
		"etc/ssh/sshd_config.d/grk.conf": "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n",
		"etc/machine-id":                 "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o440); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "etc/ssh/sshd_config.d/grk.conf"), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(root, "etc/machine-id"), 0o444); err != nil {
		return err
	}
	keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*"))
	for _, k := range keys {
		if err := os.Remove(k); err != nil {
			return err
		}
	}
	return nil
}

// maskedUnits are masked on every host.
var maskedUnits = []string{"systemd-remount-fs.service", "apt-daily.timer", "apt-daily-upgrade.timer",
	"e2scrub_all.timer", "dpkg-db-backup.timer", "e2scrub_reap.service",
	// Creates system users packages declare; the image has them all, and on an overlay it
	// sometimes fails to lock /etc/passwd when five hosts boot at once.
	"systemd-sysusers.service"}

// Options describe a lab.
type Options struct {
	// Prefix starts every name the lab creates: the bridge PREFIX-br0, network namespaces
	// and machines PREFIX-hN, veths PREFIXhN and PREFIXhNc.
	Prefix string
	// Subnet is the bridge's private network; the bridge takes .1, host N takes .10+N.
	Subnet netip.Prefix
	// Image is the root filesystem from EnsureImage.
	Image string
	// Dir holds each host's overlay, disk file, keys and logs; removed by the caller.
	Dir string
	// Hosts is how many hosts to boot.
	Hosts int
	// DiskBytes is the size of each data disk (sparse).
	DiskBytes int64
	Logf      Logf
}

// Lab is a set of booted hosts on one bridge.
type Lab struct {
	opts       Options
	Bridge     string
	BridgeAddr netip.Addr
	// KeyFile is the administrator's private key; KnownHosts pins every host's key.
	KeyFile    string
	KnownHosts string
	Hosts      []*Host
}

// Host is one booted machine.
type Host struct {
	Name    string // machine name and network namespace
	Index   int    // 1-based
	Addr    netip.Addr
	Loop    string // the loop device on this machine that backs the data disk
	Disk    string // its backing file
	HostKey string // the public ed25519 host key, "ssh-ed25519 AAAA..."
	Log     string // the container's console output

	lab        *Lab
	root       string
	upper      string
	work       string
	veth       string
	nspawn     *exec.Cmd
	nspawnDone chan struct{}
}

// Start boots a lab. On error everything it made so far is removed again.
func Start(ctx context.Context, opts Options) (*Lab, error) {
	if err := Missing(); err != nil {
		return nil, err
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Hosts < 1 || opts.Hosts > 200 {
		return nil, fmt.Errorf("hostlab: %d hosts", opts.Hosts)
	}
	if opts.DiskBytes == 0 {
		opts.DiskBytes = 256 << 20
	}
	if err := Cleanup(opts.Prefix, opts.Logf); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	l := &Lab{opts: opts, Bridge: opts.Prefix + "-br0", BridgeAddr: opts.Subnet.Addr().Next()}
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	start := time.Now()
	bits := strconv.Itoa(opts.Subnet.Bits())
	for _, args := range [][]string{
		{"link", "add", l.Bridge, "type", "bridge"},
		{"addr", "add", l.BridgeAddr.String() + "/" + bits, "dev", l.Bridge},
		{"link", "set", l.Bridge, "up"},
	} {
		if err := run(ctx, "ip", args...); err != nil {
			return nil, err
		}
	}
	l.KeyFile = filepath.Join(opts.Dir, "admin_ed25519")
	if err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", AdminUser, "-f", l.KeyFile); err != nil {
		return nil, err
	}
	adminPub, err := os.ReadFile(l.KeyFile + ".pub")
	if err != nil {
		return nil, err
	}
	uid, gid, err := passwdIDs(filepath.Join(opts.Image, "etc/passwd"), AdminUser)
	if err != nil {
		return nil, err
	}

	var known strings.Builder
	addr := opts.Subnet.Addr()
	for range 10 {
		addr = addr.Next()
	}
	for i := 1; i <= opts.Hosts; i++ {
		addr = addr.Next()
		if !opts.Subnet.Contains(addr) {
			return nil, fmt.Errorf("hostlab: %v has no room for %d hosts", opts.Subnet, opts.Hosts)
		}
		h := &Host{Name: fmt.Sprintf("%s-h%d", opts.Prefix, i), Index: i, Addr: addr, lab: l,
			veth: fmt.Sprintf("%sh%d", opts.Prefix, i)}
		l.Hosts = append(l.Hosts, h)
		if err := h.prepare(ctx, adminPub, uid, gid); err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
		fmt.Fprintf(&known, "%s %s\n", h.Addr, h.HostKey)
	}
	l.KnownHosts = filepath.Join(opts.Dir, "known_hosts")
	if err := os.WriteFile(l.KnownHosts, []byte(known.String()), 0o644); err != nil {
		return nil, err
	}
	for _, h := range l.Hosts {
		if err := h.boot(); err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	for _, h := range l.Hosts {
		if err := h.waitRunning(ctx, 3*time.Minute); err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", h.Name, err, h.ConsoleTail(30))
		}
	}
	opts.Logf("hostlab: %d hosts booted and running in %v", opts.Hosts, time.Since(start).Round(100*time.Millisecond))
	ok = true
	return l, nil
}

// prepare makes the host's overlay, keys, network namespace and disk.
func (h *Host) prepare(ctx context.Context, adminPub []byte, uid, gid int) error {
	dir := filepath.Join(h.lab.opts.Dir, h.Name)
	h.root, h.upper, h.work = filepath.Join(dir, "root"), filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	h.Log = filepath.Join(dir, "console.log")
	for _, d := range []string{h.root, h.upper, h.work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// The host's own files go into the upper directory before the overlay is mounted.
	etc := filepath.Join(h.upper, "etc")
	if err := os.MkdirAll(filepath.Join(etc, "ssh"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "hostname"), []byte(h.Name+"\n"), 0o644); err != nil {
		return err
	}
	hosts := "127.0.0.1 localhost\n" + h.Addr.String() + " " + h.Name + "\n"
	if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	// Units a container cannot or need not run: the root is an overlay systemd-nspawn
	// mounted (remounting it per /etc/fstab fails now and then), and timers that would
	// wake apt and e2scrub in the middle of a test.
	units := filepath.Join(etc, "systemd", "system")
	if err := os.MkdirAll(units, 0o755); err != nil {
		return err
	}
	for _, u := range maskedUnits {
		if err := os.Symlink("/dev/null", filepath.Join(units, u)); err != nil {
			return err
		}
	}
	hostKey := filepath.Join(etc, "ssh/ssh_host_ed25519_key")
	if err := run(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@"+h.Name, "-f", hostKey); err != nil {
		return err
	}
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return err
	}
	fields := strings.Fields(string(pub))
	h.HostKey = fields[0] + " " + fields[1]
	sshDir := filepath.Join(h.upper, "home", AdminUser, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		return err
	}
	auth := filepath.Join(sshDir, "authorized_keys")
	if err := os.WriteFile(auth, adminPub, 0o600); err != nil {
		return err
	}
	for _, p := range []string{filepath.Join(h.upper, "home", AdminUser), sshDir, auth} {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(h.upper, "home", AdminUser), 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", h.lab.opts.Image, h.upper, h.work)
	if err := run(ctx, "mount", "-t", "overlay", h.Name, "-o", opts, h.root); err != nil {
		return err
	}

	// Network: a namespace of the host's own, a veth into it, the other end on the bridge.
	netns := h.Name
	inside := h.veth + "c"
	for _, c := range [][]string{
		{"netns", "add", netns},
		{"link", "add", h.veth, "type", "veth", "peer", "name", inside},
		{"link", "set", inside, "netns", netns},
		{"link", "set", h.veth, "master", h.lab.Bridge},
		{"link", "set", h.veth, "up"},
		{"-n", netns, "addr", "add", h.Addr.String() + "/" + strconv.Itoa(h.lab.opts.Subnet.Bits()), "dev", inside},
		{"-n", netns, "link", "set", inside, "up"},
		{"-n", netns, "link", "set", "lo", "up"},
	} {
		if err := run(ctx, "ip", c...); err != nil {
			return err
		}
	}

	h.Disk = filepath.Join(dir, h.Name+"-disk.img")
	return h.attachDisk(ctx)
}

// attachDisk creates a blank sparse disk file and a loop device for it.
func (h *Host) attachDisk(ctx context.Context) error {
	if err := os.WriteFile(h.Disk, nil, 0o600); err != nil {
		return err
	}
	if err := os.Truncate(h.Disk, h.lab.opts.DiskBytes); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "losetup", "--find", "--show", h.Disk).Output()
	if err != nil {
		return fmt.Errorf("losetup %s: %w", h.Disk, err)
	}
	h.Loop = strings.TrimSpace(string(out))
	return nil
}

// boot starts systemd-nspawn: systemd as PID 1 in the overlay, in the host's network
// namespace, with the loop device at the Google Cloud data disk path.
func (h *Host) boot() error {
	logFile, err := os.Create(h.Log)
	if err != nil {
		return err
	}
	cmd := exec.Command("systemd-nspawn", "--quiet", "-D", h.root, "--boot", "--register=no", "--keep-unit",
		"--machine="+h.Name, "--network-namespace-path=/run/netns/"+h.Name,
		"--bind="+h.Loop+":"+DataDevice, "--property=DeviceAllow="+h.Loop+" rw")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// nspawn's own process group: a Ctrl-C of the test reaches it only through Close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	h.nspawn = cmd
	h.nspawnDone = make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(h.nspawnDone)
	}()
	return nil
}

// waitRunning waits for systemd to finish booting (asked through nsenter, which works
// before sshd does) and then for sshd to let the administrator in.
func (h *Host) waitRunning(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-h.nspawnDone:
			return fmt.Errorf("systemd-nspawn exited: %v", h.nspawn.ProcessState)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		out, err := h.Enter(ctx, "systemctl", "is-system-running")
		switch state := strings.TrimSpace(out); state {
		case "running":
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := h.Run(c, "true")
			cancel()
			if err == nil {
				return nil
			}
			last = fmt.Errorf("systemd is running but ssh fails: %v", err)
		case "degraded":
			failed, _ := h.Enter(ctx, "sh", "-c", "systemctl --failed --no-legend --plain; journalctl -b --no-pager -p warning | tail -n 40")
			return fmt.Errorf("systemd is degraded; failed units and warnings:\n%s", failed)
		default:
			last = fmt.Errorf("systemctl is-system-running: %q (%v)", state, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not running after %v: %v", timeout, last)
}

// Enter runs a command inside the host through nsenter, not ssh: for diagnosis when ssh is
// what fails.
func (h *Host) Enter(ctx context.Context, args ...string) (string, error) {
	pid, err := h.initPID()
	if err != nil {
		return "", err
	}
	nsArgs := append([]string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--ipc", "--net", "--pid", "--"}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", nsArgs...).CombinedOutput()
	return string(out), err
}

// initPID finds the host's systemd: the child of its systemd-nspawn.
func (h *Host) initPID() (int, error) {
	if h.nspawn == nil || h.nspawn.Process == nil {
		return 0, errors.New("not booted")
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(h.nspawn.Process.Pid) {
			return strconv.Atoi(filepath.Base(filepath.Dir(p)))
		}
	}
	return 0, fmt.Errorf("no process under systemd-nspawn pid %d", h.nspawn.Process.Pid)
}

// SSHArgs are the ssh options that log in as the administrator with the host key pinned.
func (l *Lab) SSHArgs() []string {
	return []string{"-i", l.KeyFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + l.KnownHosts,
		"-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"}
}

// Run runs a shell command on the host as the administrator, over ssh; prefix it with sudo
// for root. The output is stdout and stderr together.
func (h *Host) Run(ctx context.Context, command string) (string, error) {
	args := append(h.lab.SSHArgs(), AdminUser+"@"+h.Addr.String(), command)
	out, err := exec.CommandContext(ctx, "ssh", args...).CombinedOutput()
	return string(out), err
}

// ConsoleTail returns the last n lines the container printed.
func (h *Host) ConsoleTail(n int) string {
	data, err := os.ReadFile(h.Log)
	if err != nil {
		return err.Error()
	}
	return tail(string(data), n)
}

// Close powers every host off (SIGTERM to systemd-nspawn asks systemd to shut down; SIGKILL
// after 30 seconds), then removes the mounts, loop devices, namespaces and the bridge.
func (l *Lab) Close() error {
	var errs []error
	for _, h := range l.Hosts {
		if h.nspawn != nil && h.nspawn.Process != nil {
			_ = h.nspawn.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, h := range l.Hosts {
		if h.nspawnDone == nil {
			continue
		}
		select {
		case <-h.nspawnDone:
		case <-time.After(45 * time.Second):
			l.opts.Logf("hostlab: %s did not power off within 45s; killing it. Its console:\n%s", h.Name, h.ConsoleTail(15))
			if pid, err := h.initPID(); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			_ = syscall.Kill(-h.nspawn.Process.Pid, syscall.SIGKILL)
			<-h.nspawnDone
		}
	}
	ctx := context.Background()
	for _, h := range l.Hosts {
		if h.root != "" && mounted(h.root) {
			if err := run(ctx, "umount", h.root); err != nil {
				errs = append(errs, err, run(ctx, "umount", "--lazy", h.root))
			}
		}
		if h.Loop != "" {
			if err := run(ctx, "losetup", "--detach", h.Loop); err != nil {
				errs = append(errs, err)
			}
		}
		// The veth first: deleting either end deletes the pair.
		if linkExists(h.veth) {
			errs = append(errs, run(ctx, "ip", "link", "del", h.veth))
		}
		if netnsExists(h.Name) {
			errs = append(errs, run(ctx, "ip", "netns", "del", h.Name))
		}
	}
	if linkExists(l.Bridge) {
		errs = append(errs, run(ctx, "ip", "link", "del", l.Bridge))
	}
	return errors.Join(errs...)
}

// Cleanup removes what a lab with this prefix left behind when its test was killed: machines
// still running (their systemd-nspawn, found by the machine name it was started with),
// overlay mounts, loop devices, namespaces, veths and the bridge.
func Cleanup(prefix string, logf Logf) error {
	if prefix == "" || strings.ContainsAny(prefix, " /") {
		return fmt.Errorf("hostlab: prefix %q", prefix)
	}
	ctx := context.Background()
	var errs []error
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "systemd-nspawn" {
			continue
		}
		for _, a := range args {
			if strings.HasPrefix(a, "--machine="+prefix+"-h") {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				logf("hostlab: stopping a leftover %s (systemd-nspawn pid %d)", strings.TrimPrefix(a, "--machine="), pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
				for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
	}
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		var targets []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// mountinfo: ... mount point is field 5; after " - ": fstype, source.
			for i, fld := range fields {
				if fld == "-" && i+2 < len(fields) && fields[i+1] == "overlay" && strings.HasPrefix(fields[i+2], prefix+"-h") {
					targets = append(targets, fields[4])
				}
			}
		}
		f.Close()
		for i := len(targets) - 1; i >= 0; i-- {
			logf("hostlab: unmounting a leftover %s", targets[i])
			if err := run(ctx, "umount", targets[i]); err != nil {
				errs = append(errs, run(ctx, "umount", "--lazy", targets[i]))
			}
		}
	}
	if out, err := exec.Command("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && strings.HasPrefix(filepath.Base(f[1]), prefix+"-h") && strings.Contains(f[1], "-disk.img") {
				logf("hostlab: detaching a leftover %s (%s)", f[0], f[1])
				errs = append(errs, run(ctx, "losetup", "--detach", f[0]))
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-h") {
				logf("hostlab: removing a leftover network namespace %s", f[0])
				errs = append(errs, run(ctx, "ip", "netns", "del", f[0]))
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
			if name == prefix+"-br0" || (strings.HasPrefix(name, prefix+"h") && len(name) > len(prefix)+1) {
				logf("hostlab: removing a leftover link %s", name)
				errs = append(errs, run(ctx, "ip", "link", "del", name))
			}
		}
	}
	return errors.Join(errs...)
}

func mounted(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func netnsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func passwdIDs(passwd, user string) (uid, gid int, err error) {
	data, err := os.ReadFile(passwd)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 3 && f[0] == user {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			return uid, gid, errors.Join(err1, err2)
		}
	}
	return 0, 0, fmt.Errorf("%s has no user %s", passwd, user)
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Package kernellab runs Go tests and commands inside Debian's stock kernel,
// booted in QEMU with software emulation, so that code which needs kernel
// features the host lacks (IPVS above all) is tested against the real thing.
//
// # Running a test in the lab
//
// A test hands its body to [Run]:
//
//	func TestIntegrationIPVS(t *testing.T) {
//		kernellab.Run(t, func(t *testing.T) {
//			// runs inside the guest, as root, with ip_vs loaded
//		})
//	}
//
// On the host, Run builds the current package's test binary (go test -c,
// CGO_ENABLED=0, so it is static), builds an initramfs, boots the kernel and
// runs the binary in the guest with -test.run set to this test's name. The
// guest's output is logged line by line through t.Log, and the host test fails
// with the guest's exit status when the guest test fails, or is skipped when the
// guest test skipped. Inside the guest (the environment variable named by
// [EnvInside] is set) Run calls the body directly. Subtests of the body run in
// the same boot, which is how several checks share one boot. Options add files
// ([WithFile], [WithData]), static Go programs ([WithGoBinary]), host programs
// with their libraries ([WithHostBinary]), modules ([WithModules]),
// environment ([WithEnv]), and set the timeout, memory and CPUs. The
// package's testdata directory is copied to the guest's working directory.
// [Exec] boots the lab for a shell script instead of a Go test.
//
// # The guest
//
// The kernel is the versioned linux-image-*-amd64 package that Debian's
// linux-image-amd64 depends on, fetched once with apt-get download, unpacked
// with dpkg-deb -x and cached under build/kernellab/ at the module root
// (SARU_KERNELLAB_CACHE overrides the place). The uncompressed kernel is
// extracted from vmlinuz once (with xz) and booted through its PVH entry
// point, which skips the firmware and the kernel's self-decompression, the
// slowest part of a boot under software emulation. The initramfs holds busybox (static), the kernel modules the lab needs with
// their dependencies (resolved from each module's .modinfo) and a modules.dep,
// and Debian's ipvsadm, ip, nft and conntrack (those the host has) with their
// shared libraries, as independent witnesses of the kernel's state. The guest mounts /proc,
// /sys, /dev, tmpfs on /tmp and /run, brings loopback up, loads the modules
// (IPVS with every scheduler, nf_conntrack, nf_nat, nf_tables with the nft
// expressions, veth, bridge, dummy, ipip, netem), runs the command and powers
// off, reporting the exit status on the console. A timeout kills the VM.
//
// A boot takes about 4-6 s from starting QEMU to running the test on an idle
// two-core machine (longer when the host is busy), plus the time to build the
// test binary and about 1 s to build the initramfs; the first run also
// downloads the kernel (70 MB).
//
// # What it does not do
//
// It does not use KVM (it hangs on the machines this project is built on), give
// the guest a network to the outside, or keep anything the guest writes. It
// skips the test only in -short mode and when qemu-system-x86_64 is not
// installed; every other failure to prepare the lab fails the test.
package kernellab

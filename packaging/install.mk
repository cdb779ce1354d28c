# Installation and distribution packages, included at the end of the top
# Makefile (which defines VERSION, MAJOR, LIBNAME, SONAME, REALNAME, BUILD,
# LIB and the `lib` target). The version lives in Cargo.toml only: the soname
# (rust/ptmalloc-rs/build.rs), the file names, the .pc file and the man page
# all derive from it, and `packaging-versions-check` keeps debian/ and the
# spec in step with it.
#
#   make install [DESTDIR=] [PREFIX=/usr/local] [LIBDIR=$(PREFIX)/lib]
#                [INCLUDEDIR=] [MANDIR=] [PKGCONFIGDIR=]
#   make install-strip       the same, with the library stripped
#   make uninstall           same variables as install
#   make distcheck           install into a staging root and use it as a consumer would
#   make symbols-check       exported symbols == the functions in the header
#   make reproducible-check  a second build gives the same .so
#   make deb                 .deb files into build/ (DEB_BUILD_OPTIONS=nocheck skips `make check`)
#   make rpm                 .rpm files into build/ (RPM_NOCHECK=1 skips %check)
#   make deb-check           unpack the built .debs into a staging root, run the consumer test
#   make rpm-check           the same for the built .rpms

PREFIX       ?= /usr/local
EXEC_PREFIX  ?= $(PREFIX)
LIBDIR       ?= $(EXEC_PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
DATAROOTDIR  ?= $(PREFIX)/share
MANDIR       ?= $(DATAROOTDIR)/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INSTALL      ?= install
LDCONFIG     ?= ldconfig

PKG      := ptmalloc-rs
HEADER   := include/ptmalloc-rs/ptmalloc.h
PKGDIR   := packaging
CONSUMER := sh $(PKGDIR)/tests/consumer-test.sh

# The .pc file spells directories under the prefix through ${prefix} and
# ${exec_prefix}, so that pkg-config --define-prefix and sysroots work.
pc_exec_prefix = $(patsubst $(PREFIX)%,$${prefix}%,$(EXEC_PREFIX))
pc_libdir      = $(patsubst $(EXEC_PREFIX)/%,$${exec_prefix}/%,$(LIBDIR))
pc_includedir  = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
SUBST = sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@PREFIX@|$(PREFIX)|g' \
	-e 's|@EXEC_PREFIX@|$(pc_exec_prefix)|g' -e 's|@LIBDIR@|$(pc_libdir)|g' \
	-e 's|@INCLUDEDIR@|$(pc_includedir)|g'

# Run ldconfig only for a live install (not into a staging root), and only
# when allowed to write the cache.
run-ldconfig = if [ -z "$(DESTDIR)" ] && [ -w /etc/ld.so.cache -o ! -e /etc/ld.so.cache ]; then \
	$(LDCONFIG) || true; fi

.PHONY: install install-strip install-files uninstall distcheck symbols-check \
	reproducible-check packaging-versions-check deb deb-check rpm rpm-check

install: lib
	@$(MAKE) --no-print-directory install-files

install-strip: lib
	@$(MAKE) --no-print-directory install-files INSTALL_STRIP=-s

# The installation proper, without building (distcheck and packagers who
# built already use it directly).
install-files:
	$(INSTALL) -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/$(PKG) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man7
	$(INSTALL) -m 0755 $(INSTALL_STRIP) $(BUILD)/$(REALNAME) $(DESTDIR)$(LIBDIR)/$(REALNAME)
	ln -sfn $(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(LIBDIR)/$(LIBNAME)
	$(INSTALL) -m 0644 $(HEADER) $(DESTDIR)$(INCLUDEDIR)/$(PKG)/ptmalloc.h
	$(SUBST) $(PKGDIR)/$(PKG).pc.in > $(DESTDIR)$(PKGCONFIGDIR)/$(PKG).pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/$(PKG).pc
	$(SUBST) $(PKGDIR)/$(PKG).7 > $(DESTDIR)$(MANDIR)/man7/$(PKG).7
	chmod 0644 $(DESTDIR)$(MANDIR)/man7/$(PKG).7
	@$(run-ldconfig)

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/$(LIBNAME) $(DESTDIR)$(INCLUDEDIR)/$(PKG)/ptmalloc.h \
		$(DESTDIR)$(PKGCONFIGDIR)/$(PKG).pc $(DESTDIR)$(MANDIR)/man7/$(PKG).7
	-rmdir $(DESTDIR)$(INCLUDEDIR)/$(PKG) 2>/dev/null
	@# In a staging root, also the directories install made, if now empty (never
	@# above DESTDIR; on a live system the standard directories stay).
	@if [ -n "$(DESTDIR)" ]; then \
		for d in $(LIBDIR) $(PKGCONFIGDIR) $(INCLUDEDIR) $(MANDIR)/man7; do \
			while [ "$$d" != / ] && [ "$$d" != . ] && rmdir "$(DESTDIR)$$d" 2>/dev/null; do \
				d=$$(dirname "$$d"); done; \
		done; fi
	@$(run-ldconfig)

# The staged-install consumer test: install into a staging root, build and
# run a C program against it with nothing but pkg-config, check the soname,
# the exported symbols and LD_PRELOAD of a real program, then uninstall and
# check that nothing is left. Builds nothing beyond `make lib`.
DISTCHECK_ROOT := $(abspath $(BUILD)/distcheck/root)
distcheck: lib packaging-versions-check
	rm -rf $(DISTCHECK_ROOT)
	@$(MAKE) --no-print-directory install-files DESTDIR=$(DISTCHECK_ROOT) PREFIX=/usr \
		LIBDIR=/usr/lib EXEC_PREFIX=/usr INCLUDEDIR=/usr/include MANDIR=/usr/share/man \
		PKGCONFIGDIR=/usr/lib/pkgconfig INSTALL_STRIP=
	EXPECT_VERSION=$(VERSION) EXPECT_SONAME=$(SONAME) $(CONSUMER) $(DISTCHECK_ROOT)
	@$(MAKE) --no-print-directory uninstall DESTDIR=$(DISTCHECK_ROOT) PREFIX=/usr \
		LIBDIR=/usr/lib EXEC_PREFIX=/usr INCLUDEDIR=/usr/include MANDIR=/usr/share/man \
		PKGCONFIGDIR=/usr/lib/pkgconfig
	@if [ -n "$$(find $(DISTCHECK_ROOT) -mindepth 1)" ]; then \
		echo "distcheck: uninstall left:" >&2; find $(DISTCHECK_ROOT) -mindepth 1 >&2; exit 1; fi
	@echo "distcheck: ok (install, pkg-config consumer, soname, symbols, LD_PRELOAD, uninstall)"

symbols-check: lib
	sh $(PKGDIR)/tests/symbols-check.sh $(HEADER) $(BUILD)/$(REALNAME)

# Builds the library a second time in another target directory and compares.
# The build path is not part of the output as long as the source tree stays
# where it is; see debian/rules for builds from other places.
reproducible-check: lib
	rm -rf $(BUILD)/repro
	CARGO_TARGET_DIR=$(abspath $(BUILD)/repro) $(CARGO) build --release -p ptmalloc-rs
	cmp $(BUILD)/$(REALNAME) $(BUILD)/repro/release/libptmalloc_rs.so
	@echo "reproducible-check: ok ($$(sha256sum < $(BUILD)/$(REALNAME) | cut -c1-16)...)"
	rm -rf $(BUILD)/repro

# Debian's changelog, package names and symbols file, and the RPM spec, must
# name the version and soname Cargo.toml gives.
packaging-versions-check:
	@set -e; fail() { echo "packaging-versions-check: $$*" >&2; exit 1; }; \
	deb=$$(sed -n '1s/^[^ ]* (\([^)-]*\)-[^)]*).*/\1/p' $(PKGDIR)/debian/changelog); \
	[ "$$deb" = "$(VERSION)" ] || fail "debian/changelog has $$deb, Cargo.toml $(VERSION)"; \
	grep -q '^Package: libptmalloc-rs$(MAJOR)$$' $(PKGDIR)/debian/control || \
		fail "debian/control has no package libptmalloc-rs$(MAJOR)"; \
	[ -f $(PKGDIR)/debian/libptmalloc-rs$(MAJOR).symbols ] || \
		fail "no debian/libptmalloc-rs$(MAJOR).symbols"; \
	head -n 1 $(PKGDIR)/debian/libptmalloc-rs$(MAJOR).symbols | \
		grep -q '^$(SONAME) libptmalloc-rs$(MAJOR) ' || fail "symbols file is not for $(SONAME)"; \
	rpm=$$(sed -n 's/^Version:[[:space:]]*//p' $(PKGDIR)/rpm/$(PKG).spec); \
	[ "$$rpm" = "$(VERSION)" ] || fail "the spec has Version $$rpm, Cargo.toml $(VERSION)"; \
	grep -q '^%global sover $(MAJOR)$$' $(PKGDIR)/rpm/$(PKG).spec || fail "the spec's sover is not $(MAJOR)"

# The tree as git sees it (tracked and new files, without ignored ones such as
# target/ and build/), or everything but those outside a git checkout.
copy-tree = if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	git ls-files -z --cached --others --exclude-standard | \
		tar --null --ignore-failed-read -T - -cf -; \
	else tar --exclude-vcs --exclude=./target --exclude=./build -cf - .; fi | tar -xf - -C $(1)

# dpkg-buildpackage writes next to the source tree, so the build happens in a
# copy under build/deb/; the crates are fetched here so that the package
# build itself runs offline (see packaging/debian/README.source).
DEB_DIR := $(BUILD)/deb
DEB_SRC := $(DEB_DIR)/$(PKG)-$(VERSION)
deb: packaging-versions-check
	$(CARGO) fetch --locked
	rm -rf $(DEB_DIR) $(BUILD)/*.deb
	mkdir -p $(DEB_SRC)
	$(call copy-tree,$(DEB_SRC))
	rm -rf $(DEB_SRC)/debian && cp -a $(PKGDIR)/debian $(DEB_SRC)/debian
	cd $(DEB_SRC) && dpkg-buildpackage -b -us -uc
	cp $(DEB_DIR)/*.deb $(BUILD)/
	@if command -v lintian >/dev/null; then \
		echo "lintian $(DEB_DIR)/*.changes"; \
		lintian --fail-on error --info $(DEB_DIR)/*.changes; \
	else echo "deb: lintian not installed, not run"; fi
	@ls -l $(BUILD)/*.deb

# The consumer test against the built packages, unpacked (not installed).
deb-check:
	rm -rf $(DEB_DIR)/root && mkdir -p $(DEB_DIR)/root
	for f in $(BUILD)/libptmalloc-rs$(MAJOR)_*.deb $(BUILD)/libptmalloc-rs-dev_*.deb; do \
		dpkg-deb -x $$f $(DEB_DIR)/root || exit 1; done
	EXPECT_VERSION=$(VERSION) EXPECT_SONAME=$(SONAME) $(CONSUMER) $(abspath $(DEB_DIR)/root)

# rpmbuild from a source tarball of the same tree; on a system without an RPM
# database of the build dependencies (Debian) they cannot be checked: --nodeps.
# Dates come from the spec's changelog (as on Fedora), so two builds agree.
RPM_TOP := $(abspath $(BUILD)/rpm)
RPMBUILD_FLAGS ?= $(if $(wildcard /var/lib/dpkg/status),--nodeps)
RPM_DEFINES = --define '_topdir $(RPM_TOP)' \
	--define 'source_date_epoch_from_changelog 1' \
	--define 'use_source_date_epoch_as_buildtime 1' \
	--define 'clamp_mtime_to_source_date_epoch 1'
rpm: packaging-versions-check
	$(CARGO) fetch --locked
	rm -rf $(RPM_TOP) $(BUILD)/*.rpm
	mkdir -p $(RPM_TOP)/SOURCES $(RPM_TOP)/tree/$(PKG)-$(VERSION)
	$(call copy-tree,$(RPM_TOP)/tree/$(PKG)-$(VERSION))
	mtime=$$(git log -1 --format=%ct 2>/dev/null || echo 0); \
	tar --sort=name --mtime=@$$mtime --owner=0 --group=0 --numeric-owner -C $(RPM_TOP)/tree \
		-cf - $(PKG)-$(VERSION) | gzip -n > $(RPM_TOP)/SOURCES/$(PKG)-$(VERSION).tar.gz
	rm -rf $(RPM_TOP)/tree
	rpmbuild -bb $(RPMBUILD_FLAGS) $(if $(RPM_NOCHECK),--nocheck) $(RPM_DEFINES) \
		$(PKGDIR)/rpm/$(PKG).spec
	cp $(RPM_TOP)/RPMS/*/*.rpm $(BUILD)/
	@ls -l $(BUILD)/*.rpm

# The consumer test against the built RPMs, unpacked (rpm2archive: no cpio needed).
rpm-check:
	rm -rf $(RPM_TOP)/root && mkdir -p $(RPM_TOP)/root
	for f in $(BUILD)/$(PKG)-$(VERSION)-*.rpm $(BUILD)/$(PKG)-devel-$(VERSION)-*.rpm; do \
		rpm2archive - < $$f | tar -xzf - -C $(RPM_TOP)/root || exit 1; done
	EXPECT_VERSION=$(VERSION) EXPECT_SONAME=$(SONAME) $(CONSUMER) $(RPM_TOP)/root

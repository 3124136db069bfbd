"""The live menus of one process: the current bundle, older versions for calls in flight,
and reloads that swap atomically or refuse."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ivr.menu.bundle import LoadReport, MenuBundle, bundle_from_sources, load_directory

log = logging.getLogger(__name__)


class VersionStore(Protocol):
    def save(self, version: str, sources: Mapping[str, Any]) -> None: ...

    def load(self, version: str) -> Mapping[str, Any] | None: ...


class MenuNotLoadedError(RuntimeError):
    pass


class MenuRegistry:
    def __init__(self, directory: Path, entry: str, store: VersionStore | None = None,
                 keep_versions: int = 32) -> None:
        self.directory = directory
        self.entry = entry
        self.store = store
        self._current: MenuBundle | None = None
        self._versions: OrderedDict[str, MenuBundle] = OrderedDict()
        self._keep = keep_versions
        self._lock = threading.Lock()
        self.last_report = LoadReport(fatal="menus not loaded yet")

    @property
    def current(self) -> MenuBundle:
        bundle = self._current
        if bundle is None:
            raise MenuNotLoadedError(self.last_report.fatal or "no menus loaded")
        return bundle

    @property
    def loaded(self) -> bool:
        return self._current is not None

    def _remember(self, bundle: MenuBundle) -> None:
        self._versions[bundle.version] = bundle
        self._versions.move_to_end(bundle.version)
        while len(self._versions) > self._keep:
            self._versions.popitem(last=False)

    def reload(self) -> LoadReport:
        """Re-read the directory. A good result goes live at once; refused files keep their
        last good version; if the entry menu cannot be loaded, nothing changes."""
        with self._lock:
            bundle, report = load_directory(self.directory, self.entry, self._current)
            self.last_report = report
            for file, problems in report.refused.items():
                for p in problems:
                    log.error("menu refused: %s", p)
                log.error("menu file %s refused; %s", file,
                          "its last good version stays live" if Path(file).stem in
                          report.kept_previous else "it is not live")
            for p in report.warnings:
                log.warning("menu warning: %s", p)
            if bundle is None:
                log.error("menus not reloaded: %s", report.fatal)
                return report
            if self._current is None or bundle.version != self._current.version:
                if self.store is not None:
                    self.store.save(bundle.version, bundle.sources())
                self._remember(bundle)
                self._current = bundle
                log.info("menus live: version %s (%s)", bundle.version,
                         ", ".join(sorted(bundle.menus)))
            return report

    def get(self, version: str) -> MenuBundle:
        """The bundle a call was pinned to, from memory or from the version store."""
        bundle = self._versions.get(version)
        if bundle is not None:
            return bundle
        if self.store is not None:
            sources = self.store.load(version)
            if sources is not None:
                bundle = bundle_from_sources(sources)
                with self._lock:
                    self._remember(bundle)
                return bundle
        raise MenuNotLoadedError(f"menu version {version} is not known")

"""The app's shared modules. The compiled build of the pure core, when present and current, is put first here."""

from shared import native as _native

_native.activate(__path__)

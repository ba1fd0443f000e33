"""Typed errors of the container engine.

Every error carries a message a user can act on. Callers at the boundaries
(the Nova driver, the daemon, the CLI) translate these once into their own
vocabulary; nothing below them raises bare ``Exception``.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class: ``msg_fmt`` is filled from keyword arguments."""

    msg_fmt = "An unexpected container engine error occurred."

    def __init__(self, message: str | None = None, **kwargs: object) -> None:
        self.kwargs = kwargs
        if message is None:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError, ValueError):
                message = self.msg_fmt
        self.message = message
        super().__init__(message)


class NotFound(EngineError):
    msg_fmt = "Not found."


class ImageNotFound(NotFound):
    msg_fmt = ("Image %(ref)s not found: use an image fingerprint (or a "
               "unique prefix of it) or an alias from the image list.")


class ContainerNotFound(NotFound):
    msg_fmt = "Container %(name)s not found."


class SnapshotNotFound(NotFound):
    msg_fmt = "Snapshot %(snapshot)s of container %(name)s not found."


class Conflict(EngineError):
    msg_fmt = "The request conflicts with the current state."


class ContainerExists(Conflict):
    msg_fmt = "A container named %(name)s already exists; pick another name."


class ImageAliasExists(Conflict):
    msg_fmt = ("Alias %(alias)s already points to image %(fingerprint)s; "
               "delete the alias first.")


class ImageInUse(Conflict):
    msg_fmt = "Image %(fingerprint)s is used by containers: %(users)s."


class InvalidState(Conflict):
    msg_fmt = ("Cannot %(action)s container %(name)s while it is "
               "%(status)s.")


class Busy(Conflict):
    msg_fmt = ("Container %(name)s is busy with another operation; "
               "gave up after %(timeout)s s.")


class InvalidInput(EngineError):
    msg_fmt = "Invalid input."


class InvalidName(InvalidInput):
    msg_fmt = ("Invalid name %(name)r: %(reason)s. Names are 1-63 letters, "
               "digits and hyphens, start with a letter and do not end with "
               "a hyphen.")


class InvalidLimits(InvalidInput):
    msg_fmt = "Invalid limit %(key)s=%(value)r: %(reason)s."


class InvalidNic(InvalidInput):
    msg_fmt = "Invalid network interface %(nic)s: %(reason)s."


class InvalidConfig(InvalidInput):
    msg_fmt = "Invalid container setting %(key)s: %(reason)s."


class InvalidImage(InvalidInput):
    msg_fmt = "Invalid image %(source)s: %(reason)s."


class UnsafeImage(InvalidImage):
    msg_fmt = "Refused image %(source)s: %(reason)s."


class ImageTooLarge(InvalidImage):
    msg_fmt = ("Image %(source)s is too large: %(reason)s (limit "
               "%(limit)s).")


class HostError(EngineError):
    msg_fmt = "This host cannot run the request: %(reason)s."


class SubordinateIdsMissing(HostError):
    msg_fmt = ("User %(user)s has no usable subordinate %(kind)s range in "
               "%(path)s: add a line such as '%(user)s:1000000:1000000000' "
               "(tools/setup.sh does this) or set privileged=True.")


class IdmapExhausted(HostError):
    msg_fmt = ("No free %(size)s-id range left in the subordinate ids of "
               "%(user)s (%(ranges)s); delete containers or grow the range "
               "in /etc/subuid and /etc/subgid.")


class StartFailed(EngineError):
    msg_fmt = "Container %(name)s failed to start: %(reason)s"

    def __init__(self, message: str | None = None, *,
                 log_lines: list[str] | None = None,
                 **kwargs: object) -> None:
        self.log_lines = list(log_lines or [])
        if message is None and self.log_lines:
            kwargs.setdefault("reason", "\n  " + "\n  ".join(self.log_lines))
        super().__init__(message, **kwargs)


class TrafficLimitFailed(StartFailed):
    msg_fmt = ("Container %(name)s was stopped: its traffic limits on "
               "%(nic)s could not be applied: %(reason)s")


class OperationFailed(EngineError):
    msg_fmt = "Could not %(action)s container %(name)s: %(reason)s"


class CommandTimeout(EngineError):
    msg_fmt = ("Command %(command)s in container %(name)s did not finish "
               "in %(timeout)s s and was killed.")


class SnapshotExists(Conflict):
    msg_fmt = ("Container %(name)s already has a snapshot named "
               "%(snapshot)s; pick another name or delete that one first.")


class StatefulSnapshotUnsupported(HostError):
    msg_fmt = ("Cannot take a stateful snapshot of %(name)s: %(reason)s. "
               "Take a stateless snapshot (stateful=False) instead, or "
               "install a CRIU whose 'criu check' passes on this kernel.")


class PathNotFound(NotFound):
    msg_fmt = "%(path)s not found in container %(name)s."


class PathExists(Conflict):
    msg_fmt = ("%(path)s already exists in container %(name)s as a "
               "%(kind)s; delete it first.")


class DirectoryNotEmpty(Conflict):
    msg_fmt = ("Cannot delete %(path)s in container %(name)s: the directory "
               "is not empty; delete what it holds first.")


class UnsafePath(InvalidInput):
    msg_fmt = ("Cannot %(action)s %(path)s in container %(name)s: "
               "%(reason)s (a part of the path is a symlink or not a "
               "directory).")

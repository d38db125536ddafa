"""HTTP fakes of Scalingo and Slack on loopback.

The Scalingo fake ships inside the package (`backup_monitor.fakes.scalingo`) because `backup-monitor demo`
runs against it after a plain `pip install`; it is re-exported here for the tests.
"""

from backup_monitor.fakes.scalingo import FakeScalingo, RecordedRequest, make_jwt

__all__ = ["FakeScalingo", "RecordedRequest", "make_jwt"]

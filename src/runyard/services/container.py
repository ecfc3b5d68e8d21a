"""Every service wired to one database, one row store and one file store."""

from __future__ import annotations

from runyard.services.accounts import Accounts
from runyard.services.exports import Exports
from runyard.services.imports import Imports
from runyard.services.links import LinkSigner
from runyard.services.results import Results
from runyard.services.runs import Runs
from runyard.settings import Settings
from runyard.storage import Database, LocalFileStore, SqlRowStore


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.resolved_database_url)
        self.db.migrate()
        self.rows = SqlRowStore(self.db.engine)
        self.files = LocalFileStore(settings.files_dir)
        self.accounts = Accounts(self.db)
        self.runs = Runs(self.db)
        self.results = Results(self.runs, self.rows)
        self.imports = Imports(self.db, self.rows, self.runs, settings.data_dir / "locks")
        self.signer = LinkSigner(settings.resolved_secret_key(), settings.link_ttl_seconds)
        self.exports = Exports(
            self.db,
            self.rows,
            self.files,
            self.runs,
            self.signer,
            threads=settings.export_threads,
        )

    def close(self) -> None:
        self.exports.close()
        self.db.dispose()

#ifndef JAILCTL_SQLITE_TUNING_H
#define JAILCTL_SQLITE_TUNING_H

/* sqlite3_db_config is variadic, which Swift cannot call; this wraps the one use. */
typedef struct sqlite3 sqlite3;

/* Closing the connection no longer checkpoints the WAL (and deletes it). Returns an
   SQLite result code. */
int jl_sqlite_no_checkpoint_on_close(sqlite3 *db);

#endif

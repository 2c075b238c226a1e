//! The database side: the tables (`rows`), their DDL per database (`ddl`), the encoding rows
//! wait in while a database is away (`codec`), and `nflogd query` (`query`).

pub mod codec;
pub mod db;
pub mod ddl;
pub mod query;
pub mod rollup;
pub mod rows;
pub mod ulogd_tables;

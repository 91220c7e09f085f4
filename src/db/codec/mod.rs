//! Values between Python and the PostgreSQL binary wire format.
//!
//! Parameters: Python objects become owned [`from_python::Param`]s on the
//! event-loop thread; on tokio, once the server has said which type each
//! parameter has (the statement is prepared first), they are encoded in that
//! type's binary format, or rejected with `DataError`. The batch paths
//! (`executemany`, `copy_records_to_table`) skip the owned step: once the
//! types are known they read the Python rows directly (`py_wire`).
//!
//! Results: rows stay raw bytes until the event-loop thread builds Python
//! objects from them in one pass (`to_python`).

pub(crate) mod custom;
pub(crate) mod from_python;
pub(crate) mod py_wire;
pub(crate) mod to_python;

/// Type OIDs fastio encodes and decodes natively (pg_type.dat).
pub(crate) mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
    pub const CIDR: u32 = 650;
    pub const INET: u32 = 869;
    pub const MACADDR: u32 = 829;
    pub const TIMETZ: u32 = 1266;
    pub const MONEY: u32 = 790;
    /// The anonymous `record` type (`SELECT ROW(1, 'a')`).
    pub const RECORD: u32 = 2249;
    pub const INT4RANGE: u32 = 3904;
    pub const NUMRANGE: u32 = 3906;
    pub const TSRANGE: u32 = 3908;
    pub const TSTZRANGE: u32 = 3910;
    pub const DATERANGE: u32 = 3912;
    pub const INT8RANGE: u32 = 3926;

    /// Element type of a built-in range type.
    pub fn range_element(range: u32) -> Option<u32> {
        Some(match range {
            INT4RANGE => INT4,
            NUMRANGE => NUMERIC,
            TSRANGE => TIMESTAMP,
            TSTZRANGE => TIMESTAMPTZ,
            DATERANGE => DATE,
            INT8RANGE => INT8,
            _ => return None,
        })
    }

    /// Whether `decode` handles the type by its OID alone (built-in types);
    /// others are described by the type information of their column.
    pub fn is_native(ty: u32) -> bool {
        matches!(
            ty,
            BOOL | BYTEA
                | CHAR
                | NAME
                | INT8
                | INT2
                | INT4
                | TEXT
                | OID
                | JSON
                | XML
                | FLOAT4
                | FLOAT8
                | UNKNOWN
                | BPCHAR
                | VARCHAR
                | DATE
                | TIME
                | TIMESTAMP
                | TIMESTAMPTZ
                | INTERVAL
                | NUMERIC
                | UUID
                | JSONB
                | CIDR
                | INET
                | MACADDR
                | TIMETZ
                | MONEY
                | RECORD
        ) || array_element(ty).is_some()
            || range_element(ty).is_some()
    }

    /// Element type of a built-in array type.
    pub fn array_element(array: u32) -> Option<u32> {
        Some(match array {
            1000 => BOOL,
            1001 => BYTEA,
            1002 => CHAR,
            1003 => NAME,
            1005 => INT2,
            1007 => INT4,
            1009 => TEXT,
            1014 => BPCHAR,
            1015 => VARCHAR,
            1016 => INT8,
            1021 => FLOAT4,
            1022 => FLOAT8,
            1028 => OID,
            1115 => TIMESTAMP,
            1182 => DATE,
            1183 => TIME,
            1185 => TIMESTAMPTZ,
            1187 => INTERVAL,
            1231 => NUMERIC,
            199 => JSON,
            2951 => UUID,
            3807 => JSONB,
            143 => XML,
            651 => CIDR,
            1041 => INET,
            1040 => MACADDR,
            1270 => TIMETZ,
            791 => MONEY,
            2287 => RECORD,
            3905 => INT4RANGE,
            3907 => NUMRANGE,
            3909 => TSRANGE,
            3911 => TSTZRANGE,
            3913 => DATERANGE,
            3927 => INT8RANGE,
            _ => return None,
        })
    }
}

/// Days from 0001-01-01 (proleptic Gregorian day 1) to 2000-01-01, the
/// PostgreSQL epoch.
pub(crate) const PG_EPOCH_ORDINAL: i64 = 730_120;
pub(crate) const USECS_PER_DAY: i64 = 86_400_000_000;

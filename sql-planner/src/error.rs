//! Planning errors, each with its PostgreSQL SQLSTATE.

/// Why a statement could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The SQL does not parse.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// A table that does not exist.
    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),
    /// A column that does not exist.
    #[error("column \"{0}\" does not exist")]
    UndefinedColumn(String),
    /// A column name that more than one table in scope has.
    #[error("column reference \"{0}\" is ambiguous")]
    AmbiguousColumn(String),
    /// One relation name used twice in one FROM clause.
    #[error("table name \"{0}\" specified more than once")]
    DuplicateAlias(String),
    /// A table that already exists.
    #[error("relation \"{0}\" already exists")]
    DuplicateTable(String),
    /// Types that do not fit together.
    #[error("{0}")]
    TypeMismatch(String),
    /// A column used outside GROUP BY and aggregates.
    #[error(
        "column \"{0}\" must appear in the GROUP BY clause or be used in an aggregate function"
    )]
    Grouping(String),
    /// An aggregate where none may be (`GROUP BY count(*)`, `WHERE sum(x) > 1`).
    #[error("aggregate functions are not allowed in {0}")]
    MisplacedAggregate(&'static str),
    /// A position in the select list that is not there (`GROUP BY 3` of two columns).
    #[error("{0}")]
    InvalidColumnReference(String),
    /// A function or operator that does not exist for these arguments.
    #[error("{0}")]
    UndefinedFunction(String),
    /// A constant that is not valid for its type.
    #[error("invalid input syntax for type {ty}: \"{value}\"")]
    InvalidLiteral {
        /// The type.
        ty: String,
        /// The text.
        value: String,
    },
    /// A column name used twice in one table or view.
    #[error("column \"{0}\" specified more than once")]
    DuplicateColumn(String),
    /// A function argument out of its domain.
    #[error("{0}")]
    InvalidArgument(String),
    /// An object of another kind than the statement acts on (`DROP TABLE` of a view).
    #[error("{0}")]
    WrongObjectType(String),
    /// A set operation whose sides do not fit together (`CORRESPONDING` without common
    /// columns). Worded as RisingWave words it, which clients and tests match.
    #[error("Failed to run the query\n\nCaused by:\n  Invalid input syntax: {0}")]
    InvalidSetOperation(String),
    /// A failure and the failures that led to it, the outermost first, in RisingWave's
    /// wording (which clients and tests match).
    #[error(
        "Failed to run the query\n\nCaused by these errors (recent errors listed first):\n{}",
        numbered(.causes)
    )]
    Caused {
        /// The failures, the outermost first.
        causes: Vec<String>,
        /// The SQLSTATE of the innermost.
        sqlstate: &'static str,
    },
    /// A call that several candidate functions fit equally (`NULL + '1'`). The hint is part
    /// of the message, as RisingWave writes it.
    #[error(
        "Bind error: function {0} is not unique\nHINT:  Could not choose a best candidate function. You might need to add explicit type casts."
    )]
    AmbiguousFunction(String),
    /// A type, collation or other named object that does not exist.
    #[error("{0}")]
    UndefinedObject(String),
    /// Valid SQL this system does not support yet.
    #[error("not supported yet: {0}")]
    NotSupported(String),
}

impl PlanError {
    /// The PostgreSQL SQLSTATE code.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            PlanError::Syntax(_) | PlanError::InvalidSetOperation(_) => "42601",
            PlanError::UndefinedTable(_) => "42P01",
            PlanError::UndefinedColumn(_) => "42703",
            PlanError::AmbiguousColumn(_) => "42702",
            PlanError::DuplicateTable(_) => "42P07",
            PlanError::WrongObjectType(_) => "42809",
            PlanError::InvalidArgument(_) => "22023",
            PlanError::DuplicateColumn(_) => "42701",
            PlanError::DuplicateAlias(_) => "42712",
            PlanError::TypeMismatch(_) => "42804",
            PlanError::Grouping(_) | PlanError::MisplacedAggregate(_) => "42803",
            PlanError::InvalidColumnReference(_) => "42P10",
            PlanError::UndefinedFunction(_) => "42883",
            PlanError::UndefinedObject(_) => "42704",
            PlanError::InvalidLiteral { .. } => "22P02",
            PlanError::NotSupported(_) => "0A000",
            PlanError::Caused { sqlstate, .. } => sqlstate,
            PlanError::AmbiguousFunction(_) => "42725",
        }
    }
}

/// `  1: first\n  2: second`.
fn numbered(causes: &[String]) -> String {
    causes
        .iter()
        .enumerate()
        .map(|(i, c)| format!("  {}: {c}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Result of planning.
pub type PlanResult<T> = Result<T, PlanError>;

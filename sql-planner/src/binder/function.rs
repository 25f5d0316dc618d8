//! SQL functions: `CREATE FUNCTION name(arg type, ...) RETURNS type LANGUAGE SQL AS
//! $$SELECT expr$$` (or `RETURN expr`). A call is the body's expression with the arguments in
//! place of their names, bound like any expression.

use crate::dialect::StreamDialect;
use dataflow::expr::Expr;
use sqlparser::ast;
use sqlparser::parser::Parser;

use super::expr::{ExprBinder, Params, Scope, ScopeColumn, coerce, ident_name, sql_type};
use super::schema_and_name;
use crate::Plan;
use crate::catalog::FunctionCatalog;
use crate::error::{PlanError, PlanResult};

/// How deeply SQL functions may call each other (a function that ends up calling itself
/// hits this).
const MAX_DEPTH: usize = 32;

/// Binds `CREATE FUNCTION`, checking that the body binds over the arguments and yields the
/// declared type.
pub(crate) fn bind_create_function(cf: &ast::CreateFunction, params: &Params) -> PlanResult<Plan> {
    let language = cf.language.as_ref().map(ident_name);
    if language.as_deref().is_some_and(|l| l != "sql") {
        return Err(PlanError::NotSupported(format!(
            "functions in language {} (SQL functions are)",
            language.unwrap_or_default()
        )));
    }
    let returns = match &cf.return_type {
        Some(ast::FunctionReturnType::DataType(t)) => sql_type(t)?,
        Some(ast::FunctionReturnType::SetOf(_)) => {
            return Err(PlanError::NotSupported("functions returning SETOF".into()));
        }
        None => {
            return Err(PlanError::Syntax(
                "function result type must be specified".into(),
            ));
        }
    };
    let mut args = Vec::new();
    for arg in cf.args.iter().flatten() {
        let name = arg.name.as_ref().map(ident_name).ok_or_else(|| {
            PlanError::NotSupported(
                "unnamed function arguments ($n); name them and use the names".into(),
            )
        })?;
        if arg.default_expr.is_some() || arg.mode.as_ref().is_some_and(|m| *m != ast::ArgMode::In) {
            return Err(PlanError::NotSupported(
                "argument defaults and OUT arguments".into(),
            ));
        }
        args.push((name, sql_type(&arg.data_type)?));
    }
    let body = match &cf.function_body {
        Some(
            ast::CreateFunctionBody::AsBeforeOptions { body, .. }
            | ast::CreateFunctionBody::AsAfterOptions(body),
        ) => select_expression(
            &Parser::parse_sql(&StreamDialect, string_of(body)?)
                .map_err(|e| PlanError::Syntax(format!("function body: {e}")))?,
        )?,
        Some(ast::CreateFunctionBody::Return(e) | ast::CreateFunctionBody::AsReturnExpr(e)) => {
            e.clone()
        }
        Some(ast::CreateFunctionBody::AsReturnSelect(select)) => select_item(select)?,
        _ => {
            return Err(PlanError::NotSupported(
                "function bodies other than one SELECT expression or RETURN".into(),
            ));
        }
    };
    let (schema, name) = schema_and_name(&cf.name);
    let function = FunctionCatalog {
        schema,
        name,
        args,
        returns,
        body: body.to_string(),
    };
    let placeholders = function
        .args
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| Expr::column(i, *ty))
        .collect();
    inline(&function, placeholders, params)?;
    Ok(Plan::CreateFunction {
        function,
        or_replace: cf.or_replace,
    })
}

/// The text of a function body given as a string literal.
fn string_of(body: &ast::Expr) -> PlanResult<&str> {
    if let ast::Expr::Value(v) = body {
        match &v.value {
            ast::Value::SingleQuotedString(s) => return Ok(s),
            ast::Value::DollarQuotedString(d) => return Ok(&d.value),
            _ => {}
        }
    }
    Err(PlanError::Syntax(format!(
        "function body must be a string, not {body}"
    )))
}

/// The expression of a body that is one `SELECT expr` without FROM.
fn select_expression(statements: &[ast::Statement]) -> PlanResult<ast::Expr> {
    if let [ast::Statement::Query(q)] = statements
        && q.order_by.is_none()
        && q.limit_clause.is_none()
        && let ast::SetExpr::Select(select) = q.body.as_ref()
    {
        return select_item(select);
    }
    Err(PlanError::NotSupported(
        "function bodies other than one SELECT expression".into(),
    ))
}

fn select_item(select: &ast::Select) -> PlanResult<ast::Expr> {
    match select.projection.as_slice() {
        [ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. }]
            if select.from.is_empty() && select.selection.is_none() =>
        {
            Ok(e.clone())
        }
        _ => Err(PlanError::NotSupported(
            "function bodies other than one SELECT expression without FROM".into(),
        )),
    }
}

/// A call of `function` with `args`: its body bound over its arguments (each coerced to its
/// declared type), with the arguments in place of their names.
pub(crate) fn inline(
    function: &FunctionCatalog,
    args: Vec<Expr>,
    params: &Params,
) -> PlanResult<Expr> {
    if params.function_depth >= MAX_DEPTH {
        return Err(PlanError::NotSupported(format!(
            "SQL functions nested more than {MAX_DEPTH} deep (does {} call itself?)",
            function.name
        )));
    }
    let args = args
        .into_iter()
        .zip(&function.args)
        .map(|(a, (_, ty))| coerce(a, *ty))
        .collect::<PlanResult<Vec<_>>>()?;
    let scope = Scope {
        columns: function
            .args
            .iter()
            .map(|(name, ty)| ScopeColumn {
                table: None,
                name: name.clone(),
                ty: *ty,
                hidden: false,
                outer: false,
            })
            .collect(),
    };
    let body = Parser::new(&StreamDialect)
        .try_with_sql(&function.body)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| PlanError::Syntax(format!("body of function {}: {e}", function.name)))?;
    let inner = Params {
        catalog: params.catalog,
        function_depth: params.function_depth + 1,
        ..Params::default()
    };
    let bound = ExprBinder::bind_plain(&scope, &inner, &body)?;
    if !inner.types.borrow().is_empty() {
        return Err(PlanError::NotSupported(
            "$n in a function body; refer to arguments by name".into(),
        ));
    }
    Ok(coerce(bound, function.returns)?.substitute(&args))
}

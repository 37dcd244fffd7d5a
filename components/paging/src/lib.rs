//! The API's cursor pagination, in one place for the host (sessions, generic
//! resources) and the components (files, environments).
//!
//! Items are ordered by id. `after=X` is the page that follows X in the chosen order,
//! `before=X` the page just before it (still listed in the chosen order), and
//! `has_more` says whether items remain past the page in the direction of travel.
//! Because a page is "the items strictly past the cursor", walking with
//! `after=last_id` visits every item exactly once, also while items are added.

/// Sort order of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// Where a page starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cursor {
    After(String),
    Before(String),
}

/// A list's default and maximum `limit`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub default: usize,
    pub max: usize,
}

/// The usual bounds: `limit` 1–1000, default 20.
pub const STANDARD: Limits = Limits {
    default: 20,
    max: 1000,
};

/// A validated page request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<Cursor>,
    pub order: Order,
}

impl PageRequest {
    /// Reads `limit`, `after`, `before` and `order` from a query; other parameters are
    /// left to the caller. The error is a message for a `400 invalid_input`.
    pub fn from_query<'a>(
        query: impl IntoIterator<Item = (&'a str, &'a str)>,
        limits: Limits,
    ) -> Result<Self, String> {
        let mut request = PageRequest {
            limit: limits.default,
            cursor: None,
            order: Order::Desc,
        };
        for (name, value) in query {
            match name {
                "limit" => {
                    request.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=limits.max).contains(n))
                        .ok_or_else(|| {
                            format!("limit must be an integer from 1 to {}", limits.max)
                        })?
                }
                "order" => {
                    request.order = match value {
                        "asc" => Order::Asc,
                        "desc" => Order::Desc,
                        _ => return Err("order must be \"asc\" or \"desc\"".into()),
                    }
                }
                "after" | "before" if value.is_empty() => {}
                "after" | "before" => {
                    if request.cursor.is_some() {
                        return Err("give at most one of after and before".into());
                    }
                    request.cursor = Some(if name == "after" {
                        Cursor::After(value.to_owned())
                    } else {
                        Cursor::Before(value.to_owned())
                    });
                }
                _ => {}
            }
        }
        Ok(request)
    }
}

/// An ordered collection keyed by id.
pub trait Source {
    type Item;
    /// How reading the collection can fail.
    type Error;
    /// Whether an item with this id exists.
    fn contains(&mut self, id: &str) -> Result<bool, Self::Error>;
    /// Up to `limit` items whose ids come strictly after `start` (or from the first
    /// id) going up when `ascending`, down otherwise.
    fn scan(
        &mut self,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, Self::Item)>, Self::Error>;
}

/// Why a page could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum PageError<E> {
    /// The request names an unknown cursor: a message for a `400 invalid_input`.
    UnknownCursor(String),
    /// The source failed.
    Source(E),
}

/// One page of items, in the requested order.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<(String, T)>,
    pub has_more: bool,
}

/// Reads the requested page.
pub fn page<S: Source>(
    source: &mut S,
    request: &PageRequest,
) -> Result<Page<S::Item>, PageError<S::Error>> {
    let forward = request.order == Order::Asc;
    let (start, ascending, backwards) = match &request.cursor {
        None => (None, forward, false),
        Some(Cursor::After(id)) => (Some(id.as_str()), forward, false),
        Some(Cursor::Before(id)) => (Some(id.as_str()), !forward, true),
    };
    if let Some(id) = start
        && !source.contains(id).map_err(PageError::Source)?
    {
        return Err(PageError::UnknownCursor(format!(
            "unknown cursor: no item with id {id:?}"
        )));
    }
    let mut items = source
        .scan(start, ascending, request.limit + 1)
        .map_err(PageError::Source)?;
    let has_more = items.len() > request.limit;
    items.truncate(request.limit);
    if backwards {
        items.reverse();
    }
    Ok(Page { items, has_more })
}

impl Page<String> {
    /// The list body, items being JSON texts spliced in as they are. `extra` holds
    /// further members, each `"name":value,`, placed after `"object"`.
    pub fn render(&self, extra: &str) -> String {
        let data: Vec<&str> = self.items.iter().map(|(_, v)| v.as_str()).collect();
        let id = |i: Option<&(String, String)>| {
            i.map_or_else(|| "null".to_owned(), |(k, _)| json_string(k))
        };
        format!(
            "{{\"object\":\"list\",{extra}\"data\":[{}],\"first_id\":{},\"last_id\":{},\"has_more\":{}}}",
            data.join(","),
            id(self.items.first()),
            id(self.items.last()),
            self.has_more
        )
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A sorted in-memory list, for sources that are not stores.
pub struct Sorted<T>(pub Vec<(String, T)>);

impl<T: Clone> Source for Sorted<T> {
    type Item = T;
    type Error = std::convert::Infallible;
    fn contains(&mut self, id: &str) -> Result<bool, Self::Error> {
        Ok(self.0.binary_search_by(|(k, _)| k.as_str().cmp(id)).is_ok())
    }
    fn scan(
        &mut self,
        start: Option<&str>,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<(String, T)>, Self::Error> {
        let split = |inclusive_of_start: bool| match start {
            None if ascending => 0,
            None => self.0.len(),
            Some(s) => self
                .0
                .partition_point(|(k, _)| k.as_str() < s || (inclusive_of_start && k == s)),
        };
        Ok(if ascending {
            self.0[split(true)..].iter().take(limit).cloned().collect()
        } else {
            self.0[..split(false)]
                .iter()
                .rev()
                .take(limit)
                .cloned()
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(n: usize, order: Order, limit: usize, backwards: bool) -> Vec<String> {
        let mut src = Sorted((0..n).map(|i| (format!("{i:03}"), ())).collect());
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let req = PageRequest {
                limit,
                cursor: cursor.clone(),
                order,
            };
            let p = page(&mut src, &req).unwrap();
            let ids: Vec<String> = p.items.iter().map(|(k, _)| k.clone()).collect();
            if backwards {
                seen.splice(0..0, ids.clone());
                match ids.first() {
                    Some(first) if p.has_more => cursor = Some(Cursor::Before(first.clone())),
                    _ => break,
                }
            } else {
                seen.extend(ids.clone());
                match ids.last() {
                    Some(last) if p.has_more => cursor = Some(Cursor::After(last.clone())),
                    _ => break,
                }
            }
        }
        seen
    }

    #[test]
    fn forward_walks_see_every_item_once_in_order() {
        let asc = walk(45, Order::Asc, 10, false);
        assert_eq!(asc, (0..45).map(|i| format!("{i:03}")).collect::<Vec<_>>());
        let desc = walk(45, Order::Desc, 10, false);
        assert_eq!(
            desc,
            (0..45).rev().map(|i| format!("{i:03}")).collect::<Vec<_>>()
        );
    }

    #[test]
    fn before_lists_the_items_just_before_the_cursor_in_order() {
        let mut src = Sorted((0..45).map(|i| (format!("{i:03}"), ())).collect());
        let req = PageRequest {
            limit: 10,
            cursor: Some(Cursor::Before("040".into())),
            order: Order::Asc,
        };
        let p = page(&mut src, &req).unwrap();
        let ids: Vec<_> = p.items.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            ids,
            [
                "030", "031", "032", "033", "034", "035", "036", "037", "038", "039"
            ]
        );
        assert!(p.has_more);
        let req = PageRequest {
            limit: 10,
            cursor: Some(Cursor::Before("005".into())),
            order: Order::Desc,
        };
        let p = page(&mut src, &req).unwrap();
        let ids: Vec<_> = p.items.iter().map(|(k, _)| k.as_str()).collect();
        // In descending order the items before 005 are the larger ids, nearest first.
        assert_eq!(
            ids,
            [
                "015", "014", "013", "012", "011", "010", "009", "008", "007", "006"
            ]
        );
        assert!(p.has_more);
        let req = PageRequest {
            limit: 10,
            cursor: Some(Cursor::Before("040".into())),
            order: Order::Desc,
        };
        let p = page(&mut src, &req).unwrap();
        let ids: Vec<_> = p.items.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(ids, ["044", "043", "042", "041"]);
        assert!(!p.has_more);
    }

    #[test]
    fn query_bounds_and_unknown_cursor_are_refused() {
        let q = |s: &'static [(&'static str, &'static str)]| {
            PageRequest::from_query(s.iter().copied(), STANDARD)
        };
        assert!(q(&[("limit", "0")]).is_err());
        assert!(q(&[("limit", "1001")]).is_err());
        assert!(q(&[("limit", "x")]).is_err());
        assert!(q(&[("order", "up")]).is_err());
        assert!(q(&[("after", "a"), ("before", "b")]).is_err());
        assert_eq!(q(&[("limit", "1000")]).unwrap().limit, 1000);
        let mut src = Sorted(vec![("a".to_owned(), ())]);
        let req = q(&[("after", "zz")]).unwrap();
        assert!(page(&mut src, &req).is_err());
    }

    #[test]
    fn render_splices_items_and_nulls_empty_ids() {
        let p = Page {
            items: vec![("x\"".to_owned(), "{\"a\":1}".to_owned())],
            has_more: true,
        };
        assert_eq!(
            p.render(""),
            r#"{"object":"list","data":[{"a":1}],"first_id":"x\"","last_id":"x\"","has_more":true}"#
        );
        let empty: Page<String> = Page {
            items: vec![],
            has_more: false,
        };
        assert_eq!(
            empty.render("\"base\":\"\","),
            r#"{"object":"list","base":"","data":[],"first_id":null,"last_id":null,"has_more":false}"#
        );
    }
}

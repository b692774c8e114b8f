//! Reading the app's `/metrics` as Prometheus scrapes it.

use super::app::TestApp;

/// One scrape of `/metrics`: every sample by name and labels.
pub struct Scrape(pub std::collections::BTreeMap<String, f64>);

impl Scrape {
    pub async fn of(app: &TestApp) -> Self {
        let response = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = response.text().await.unwrap();
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').unwrap();
                (series.to_owned(), value.parse::<f64>().unwrap())
            })
            .collect();
        Self(samples)
    }

    /// The value of `name` with exactly `labels` (in any order), 0 if absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        wanted.sort();
        self.0
            .iter()
            .find(|(series, _)| {
                let Some(rest) = series.strip_prefix(name) else {
                    return false;
                };
                let mut have: Vec<String> = rest
                    .trim_start_matches('{')
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect();
                have.sort();
                (rest.is_empty() || rest.starts_with('{')) && have == wanted
            })
            .map_or(0.0, |(_, v)| *v)
    }
}

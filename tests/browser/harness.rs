//! The harness's own checks fail when they should: a request off the server's
//! origin, and an uncaught exception in the page (no server needed: a data: page).

use crate::browser::BrowserTest;

const PAGE: &str = "data:text/html,<p id=p>harness</p>";

#[tokio::test]
#[should_panic(expected = "requests off the server's origin")]
async fn a_request_off_the_servers_origin_fails_the_test() {
    let t = BrowserTest::start("harness_origin").await;
    t.step("fetch from elsewhere", async {
        t.page.navigate(PAGE).await?;
        // Loopback, but not the server's origin: refused at once, logged all the same.
        t.page
            .eval("fetch('http://127.0.0.2:9/asset.js').catch(() => 'refused')")
            .await?;
        Ok(())
    })
    .await;
    t.assert_all_requests_on("http://127.0.0.1:9").await;
}

#[tokio::test]
#[should_panic(expected = "uncaught exceptions in the page")]
async fn an_uncaught_exception_in_the_page_fails_its_step() {
    let t = BrowserTest::start("harness_exception").await;
    t.step("throw", async {
        t.page.navigate(PAGE).await?;
        // Thrown in a later task, after the title says so; the exception's event
        // comes before the answer to the wait that sees the title.
        t.page
            .eval("setTimeout(() => { document.title = 'thrown'; throw new Error('nobody caught this'); })")
            .await?;
        t.page
            .wait_for("the throw", "document.title === 'thrown'")
            .await?;
        Ok(())
    })
    .await;
}
